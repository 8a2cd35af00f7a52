package todevice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/rooms"
)

type fakeWriter struct{ got []rooms.ToDeviceMessage }

func (w *fakeWriter) SendToDevice(_ context.Context, _, _, _, _ string, msgs []rooms.ToDeviceMessage) error {
	w.got = msgs
	return nil
}

type fakeDevices map[string][]string

func (d fakeDevices) DeviceIDs(_ context.Context, users []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, u := range users {
		if ds, ok := d[u]; ok {
			out[u] = ds
		}
	}
	return out, nil
}

func (fakeDevices) DeleteExpiredToDevice(context.Context, int64, int64, int) (int64, error) {
	return 0, nil
}

type fakeBlocks struct {
	lists map[string][]string
	calls int
	err   error
}

func (b *fakeBlocks) Blocked(_ context.Context, user string, _ graph.Page) ([]string, string, error) {
	b.calls++
	return b.lists[user], "", b.err
}

func (b *fakeBlocks) Friends(context.Context, string, graph.Page) ([]string, string, error) {
	return nil, "", nil
}

// roomKeyShare is a request to every device of n users, as a client sends
// a room key to an encrypted room's members.
func roomKeyShare(n int) (Request, fakeDevices) {
	devs := fakeDevices{}
	msgs := map[string]map[string]json.RawMessage{}
	for i := range n {
		u := fmt.Sprintf("@u%d:hs", i)
		devs[u] = []string{"A", "B"}
		msgs[u] = map[string]json.RawMessage{"A": json.RawMessage(`{"k":1}`), "B": json.RawMessage(`{"k":2}`)}
	}
	return Request{Sender: "@s:hs", SenderDevice: "S", TxnID: "t", Type: "m.room.encrypted", Messages: msgs}, devs
}

func TestSendAsksTheGraphOncePerUserAndForgets(t *testing.T) {
	req, devs := roomKeyShare(50)
	w, blocks := &fakeWriter{}, &fakeBlocks{lists: map[string][]string{"@u3:hs": {"@s:hs"}}}
	contacts := graph.NewContacts(blocks, 5*time.Minute, 100_000)
	s := New(Config{ServerName: "hs", Writer: w, Devices: devs, Blocks: contacts, Now: func() time.Time { return time.Unix(0, 0) }})
	for range 3 {
		if err := s.Send(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(w.got); got != 98 {
		t.Errorf("messages stored = %d, want 98 (50 users x 2 devices, less @u3's two)", got)
	}
	if blocks.calls != 50 {
		t.Errorf("graph calls over three sends = %d, want 50 (once per user, then cached)", blocks.calls)
	}
	blocks.lists["@u3:hs"] = nil // @u3 unblocks through the API
	contacts.Forget("@u3:hs")
	if err := s.Send(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := len(w.got); got != 100 {
		t.Errorf("messages stored after the unblock = %d, want 100", got)
	}
	blocks.err = graph.ErrUnavailable
	contacts.Forget("@u3:hs")
	if err := s.Send(context.Background(), req); !errors.Is(err, graph.ErrUnavailable) {
		t.Errorf("Send with the graph down = %v, want ErrUnavailable (fail closed)", err)
	}
}

// BenchmarkSendRoomKeyShare: one room-key share to 100 users' 200 devices,
// with the block lists cached (the steady state).
func BenchmarkSendRoomKeyShare(b *testing.B) {
	req, devs := roomKeyShare(100)
	s := New(Config{ServerName: "hs", Writer: &fakeWriter{}, Devices: devs, Blocks: graph.NewContacts(&fakeBlocks{}, 5*time.Minute, 100_000)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
