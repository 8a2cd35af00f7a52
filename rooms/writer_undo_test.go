package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// TestWriterRefusalAfterWriteLeavesNothing: a job that refuses after it
// wrote (its event is in the batch's transaction, its room's cached head
// moved) must leave nothing behind, neither in memory nor in the store,
// while the jobs that share its batch commit. Undoing only the job's memory
// (as before) committed its event anyway, behind the writer's back: a
// refused write was stored and announced, and the room's next event forked
// off the event before it.
func TestWriterRefusalAfterWriteLeavesNothing(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	const alice = "@alice:test.local"
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Send(ctx, SendRequest{RoomID: room, Sender: alice, Type: "m.room.message", Content: json.RawMessage(`{"body":"before"}`)})
	if err != nil {
		t.Fatal(err)
	}
	errRefused := errors.New("refused after writing")
	release := blockWriter(t, s)
	var refusedID string // written by the writer goroutine, read after the job's answer
	refused := make(chan error, 1)
	go func() {
		refused <- s.submit(ctx, alice, func(ctx context.Context, b *batch) error {
			rs, err := b.room(ctx, room)
			if err != nil {
				return err
			}
			ev, _, err := b.appendEvent(ctx, rs, pdu.Proto{Sender: alice, Type: "m.room.message", Content: json.RawMessage(`{"body":"refused"}`)}, nil)
			if err != nil {
				return err
			}
			refusedID = ev.ID
			return errRefused
		})
	}()
	waitDepth(t, s, 1)
	other := make(chan error, 1)
	var otherID string
	go func() {
		var err error
		otherID, err = s.Send(ctx, SendRequest{RoomID: room, Sender: "@alice:test.local", Type: "m.room.message", Content: json.RawMessage(`{"body":"other"}`)})
		other <- err
	}()
	waitDepth(t, s, 2)
	release()
	if err := <-refused; !errors.Is(err, errRefused) {
		t.Fatalf("refused job = %v, want its refusal", err)
	}
	if err := <-other; err != nil {
		t.Fatalf("the other job of the batch = %v, want committed", err)
	}
	if _, err := s.store.GetEvent(ctx, refusedID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetEvent(refused event) = %v, want ErrNotFound: a refused write was stored", err)
	}
	ev, err := s.store.GetEvent(ctx, otherID)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PrevEvents []string `json:"prev_events"`
	}
	if err := json.Unmarshal(ev.PDU, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.PrevEvents) != 1 || p.PrevEvents[0] != last {
		t.Errorf("the other event's prev_events = %v, want [%s], the last stored event", p.PrevEvents, last)
	}
}
