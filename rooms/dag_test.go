package rooms

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestDAGCommitFailureUndo: a state event whose commit fails leaves the
// writer's cached extremities and state group as they were, so the next
// event builds on what is stored, and its group holds the right state.
// (Without the extremities' undo, the next event named the lost event as its
// prev_event.)
func TestDAGCommitFailureUndo(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t, Config{})
	owner := "@owner:test.local"
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: owner, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	xs0, err := s.Extremities(ctx, room)
	if err != nil || len(xs0) != 1 {
		t.Fatalf("Extremities = %v %v, want one", xs0, err)
	}
	fault := errors.New("disk full")
	realStore(s).SetCommitFault(func() error { return fault })
	_, err = s.Send(ctx, SendRequest{RoomID: room, Sender: owner, Type: "m.room.topic", StateKey: strPtr(""), Content: []byte(`{"topic":"lost"}`)})
	if !errors.Is(err, fault) {
		t.Fatalf("Send under a commit fault = %v, want %v", err, fault)
	}
	realStore(s).SetCommitFault(nil)
	id, err := s.Send(ctx, SendRequest{RoomID: room, Sender: owner, Type: "m.room.topic", StateKey: strPtr(""), Content: []byte(`{"topic":"kept"}`)})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.EventsByID(ctx, []string{id})
	if err != nil || len(stored) != 1 {
		t.Fatalf("EventsByID = %v %v", stored, err)
	}
	ev, err := pdu.Parse(stored[0].PDU, s.DefaultRoomVersion())
	if err != nil {
		t.Fatal(err)
	}
	if prev := ev.PrevEvents; !slices.Equal(prev, []string{xs0[0].EventID}) {
		t.Errorf("prev_events after the failed commit = %v, want the stored extremity %s", prev, xs0[0].EventID)
	}
	if xs, _ := s.Extremities(ctx, room); len(xs) != 1 || xs[0].EventID != id || xs[0].Depth != xs0[0].Depth+1 {
		t.Errorf("Extremities = %v, want [%s] at depth %d", xs, id, xs0[0].Depth+1)
	}
	st, err := s.StateAfterEvent(ctx, id)
	if err != nil || st[authrules.StateKey{Type: "m.room.topic"}] != id {
		t.Errorf("StateAfterEvent(topic) topic = %q %v, want %s", st[authrules.StateKey{Type: "m.room.topic"}], err, id)
	}
	// The room's stored current group is the topic's (written at flushDAG),
	// which a writer that reloads the room starts from.
	if head, err := s.store.LoadRoomHead(ctx, room); err != nil || head.StateGroup != stored[0].StateGroup || head.StateGroup == 0 {
		t.Errorf("stored room group = %d %v, want the topic's %d", head.StateGroup, err, stored[0].StateGroup)
	}
	// The group counter went back too: no ID was skipped.
	if g, err := s.store.MaxStateGroup(ctx); err != nil || g != s.group {
		t.Errorf("MaxStateGroup = %d %v, writer's counter %d", g, err, s.group)
	}
}
