package homeserver

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/storage"
)

// TestFedTransportResults: only non-empty per-PDU errors become
// Result.PDUErrors, and EDUs go out as the wire's objects.
func TestFedTransportResults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"none", nil, nil},
		{"all accepted", map[string]string{"$a": "", "$b": ""}, nil},
		{"one refused", map[string]string{"$a": "", "$b": "rejected"}, map[string]string{"$b": "rejected"}},
	} {
		if got := pduErrors(tc.in); !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: pduErrors = %v, want %v", tc.name, got, tc.want)
		}
	}
	got, err := marshalEDUs([]outbound.EDU{{Type: "m.typing", Content: json.RawMessage(`{"typing":true}`)}})
	if err != nil || len(got) != 1 || string(got[0]) != `{"edu_type":"m.typing","content":{"typing":true}}` {
		t.Errorf("marshalEDUs = %s, %v; want one m.typing object", got, err)
	}
	if got, err := marshalEDUs(nil); got != nil || err != nil {
		t.Errorf("marshalEDUs(nil) = %s, %v; want nil", got, err)
	}
}

// fakeRoomQueue records EDUs; servers maps room to its remote servers.
type fakeRoomQueue struct {
	servers map[string][]string
	sent    []string
}

func (f *fakeRoomQueue) ServersInRoom(dst []string, room string) []string {
	return append(dst, f.servers[room]...)
}

func (f *fakeRoomQueue) EnqueueEDU(_ context.Context, dest string, edu outbound.EDU) error {
	f.sent = append(f.sent, dest+" "+edu.Type+" "+string(edu.Content))
	return nil
}

// TestTypingOut: a local user's typing goes to every other server in the
// room; a remote user's typing (set by the /send sink) is not echoed, and a
// room with no other server sends nothing.
func TestTypingOut(t *testing.T) {
	q := &fakeRoomQueue{servers: map[string][]string{"!r:a": {"b.example", "c.example"}}}
	out := typingOut("a", q)
	out("!r:a", "@bob:a", true)
	out("!r:a", "@carol:b.example", true)
	out("!other:a", "@bob:a", false)
	body := `{"room_id":"!r:a","user_id":"@bob:a","typing":true}`
	want := []string{"b.example m.typing " + body, "c.example m.typing " + body}
	if !slices.Equal(q.sent, want) {
		t.Errorf("sent = %q, want %q", q.sent, want)
	}
}

// TestReceiptOut: a local user's public receipt goes to the room's other
// servers as m.receipt; private receipts and remote users' receipts do not.
func TestReceiptOut(t *testing.T) {
	q := &fakeRoomQueue{servers: map[string][]string{"!r:a": {"b.example"}}}
	f := &fedRoomEDUs{server: "a", q: q}
	f.receipt(storage.Receipt{RoomID: "!r:a", UserID: "@bob:a", Type: "m.read", EventID: "$e", TS: 7, ThreadID: "main"})
	f.receipt(storage.Receipt{RoomID: "!r:a", UserID: "@bob:a", Type: "m.read.private", EventID: "$e", TS: 8})
	f.receipt(storage.Receipt{RoomID: "!r:a", UserID: "@carol:b.example", Type: "m.read", EventID: "$e", TS: 9})
	want := []string{`b.example m.receipt {"!r:a":{"m.read":{"@bob:a":{"data":{"thread_id":"main","ts":7},"event_ids":["$e"]}}}}`}
	if !slices.Equal(q.sent, want) {
		t.Errorf("sent = %q, want %q", q.sent, want)
	}
}
