package inbound_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-im/parley/federation/inbound"
)

func edu(t testing.TB, typ string, content any) inbound.EDU {
	t.Helper()
	return inbound.EDU{Type: typ, Content: json.RawMessage(mustJSON(t, content))}
}

// TestSendEDUs: each EDU kind reaches its sink only when its user belongs
// to the origin (and, for typing and receipts, when the origin is in the
// room); unknown kinds are ignored; EDUs never fail the transaction.
func TestSendEDUs(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	notIn := e.newRoom() // other.example has nobody here
	room := tr.room.ID
	edus := []inbound.EDU{
		edu(t, "m.typing", map[string]any{"room_id": room, "user_id": bob, "typing": true}),
		edu(t, "m.typing", map[string]any{"room_id": room, "user_id": carol, "typing": true}),                 // not of origin
		edu(t, "m.typing", map[string]any{"room_id": room, "user_id": bob}),                                   // no typing flag
		edu(t, "m.typing", map[string]any{"room_id": "!nope:remote.example", "user_id": bob, "typing": true}), // unknown room
		edu(t, "m.receipt", map[string]any{room: map[string]any{
			"m.read":         map[string]any{bob: map[string]any{"event_ids": []string{tr.fork.Prev[0]}, "data": map[string]any{"ts": 1}}, carol: map[string]any{"event_ids": []string{tr.fork.Prev[0]}}},
			"m.read.private": map[string]any{bob: map[string]any{"event_ids": []string{tr.fork.Prev[0]}}},
		}}),
		edu(t, "m.presence", map[string]any{"push": []any{
			map[string]any{"user_id": bob, "presence": "online", "last_active_ago": 5},
			map[string]any{"user_id": carol, "presence": "online"},
			map[string]any{"user_id": alice, "presence": "bogus"},
		}}),
		edu(t, "m.direct_to_device", map[string]any{"sender": bob, "type": "m.room_key_request", "message_id": "m1",
			"messages": map[string]any{local: map[string]any{"DEV": map[string]any{"k": 1}}, carol: map[string]any{"D": map[string]any{}}}}),
		edu(t, "m.direct_to_device", map[string]any{"sender": carol, "type": "m.x", "message_id": "m2",
			"messages": map[string]any{local: map[string]any{"DEV": map[string]any{}}}}),
		edu(t, "m.device_list_update", map[string]any{"user_id": bob, "device_id": "BOBDEV", "stream_id": 1}),
		edu(t, "m.device_list_update", map[string]any{"user_id": carol, "device_id": "C", "stream_id": 1}),
		edu(t, "m.signing_key_update", map[string]any{"user_id": bob, "master_key": map[string]any{}}),
		edu(t, "m.signing_key_update", map[string]any{"user_id": carol}),
		edu(t, "org.example.unknown", map[string]any{"x": 1}),
		{Type: "m.typing", Content: json.RawMessage(`"not an object"`)},
	}
	if status, body := e.send(remote.Name, "edus", nil, edus); status != 200 {
		t.Fatalf("send = %d %s, want 200", status, body)
	}
	// From other.example, typing in a room it has nobody in is dropped.
	e.send(other.Name, "edus2", nil, []inbound.EDU{edu(t, "m.typing", map[string]any{"room_id": notIn.room.ID, "user_id": carol, "typing": true})})

	s := e.sinks
	checks := []struct {
		what      string
		got, want string
	}{
		{"typing", fmt.Sprint(s.typing), fmt.Sprint([]string{room + " " + bob + " true"})},
		{"receipts", fmt.Sprint(len(s.receipts)), "1"},
		{"presence", fmt.Sprint(len(s.presence)), "1"},
		{"to-device", fmt.Sprint(len(s.toDevice)), "1"},
		{"device lists", fmt.Sprint(s.devices), fmt.Sprint([]string{bob + " BOBDEV"})},
		{"signing keys", fmt.Sprint(s.keys), fmt.Sprint([]string{bob})},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s dispatched = %s, want %s", c.what, c.got, c.want)
		}
	}
	if len(s.receipts) == 1 {
		r := s.receipts[0]
		if r.UserID != bob || r.Type != "m.read" || r.RoomID != room || string(r.Data) != `{"ts":1}` {
			t.Errorf("receipt = %+v, want bob's m.read in %s with its data", r, room)
		}
	}
	if len(s.presence) == 1 && (s.presence[0].UserID != bob || s.presence[0].LastActiveAgo != 5) {
		t.Errorf("presence = %+v, want bob online, active 5 ms ago", s.presence[0])
	}
	if len(s.toDevice) == 1 {
		m := s.toDevice[0]
		if _, ok := m.Messages[local]; !ok || len(m.Messages) != 1 || m.Sender != bob || m.MessageID != "m1" {
			t.Errorf("to-device = %+v, want bob's message m1 for %s only", m, local)
		}
	}
}
