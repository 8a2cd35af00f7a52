package remotetest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// TestForgeMatchesBuild: Forge signs as pdu.Build does, so what it makes
// for odd shapes is what a real server would send.
func TestForgeMatchesBuild(t *testing.T) {
	s := NewServer("remote.example")
	for _, version := range []string{"10", "11", "12"} {
		r := NewRoom(t, version, s)
		f := r.Create("@alice:remote.example", `{"creator":"@alice:remote.example","room_version":"`+version+`"}`)
		for _, ev := range []*pdu.Event{
			f.SendState("@alice:remote.example", "m.room.member", "@alice:remote.example", `{"displayname":"Alice","membership":"join"}`),
			f.BuildMessage("@alice:remote.example", "hello <&> ünïcode"),
		} {
			fields := map[string]any{
				"room_id": ev.RoomID, "sender": ev.Sender, "type": ev.Type, "content": json.RawMessage(ev.Content),
				"prev_events": ev.PrevEvents, "auth_events": ev.AuthEvents, "depth": ev.Depth, "origin_server_ts": ev.OriginServerTS,
			}
			if ev.StateKey != nil {
				fields["state_key"] = *ev.StateKey
			}
			if got := s.Forge(t, version, fields); !bytes.Equal(got, ev.Raw) {
				t.Errorf("v%s Forge(%s) =\n%s\nwant (Build)\n%s", version, ev.Type, got, ev.Raw)
			}
		}
	}
}
