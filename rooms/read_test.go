package rooms

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

// StateEnd is the one rule for how much state a user may read; this table
// pins it for every membership history the attack used and a few more.
func TestStateEnd(t *testing.T) {
	history := func(ms ...string) []storage.Event {
		out := make([]storage.Event, len(ms))
		for i, m := range ms {
			out[i] = storage.Event{Pos: int64(10 * (i + 1)), Membership: m}
		}
		return out
	}
	worldReadable := []storage.Event{{Pos: 1, Client: []byte(`{"content":{"history_visibility":"world_readable"}}`)}}
	cases := []struct {
		name    string
		members []storage.Event
		vis     []storage.Event
		want    int64
	}{
		{"never in the room", nil, nil, 0},
		{"invited, never joined", history("invite"), nil, 0},
		{"knocking", history("knock"), nil, 0},
		{"banned without joining", history("ban"), nil, 0},
		{"invited, then banned", history("invite", "ban"), nil, 0},
		{"invite rejected", history("invite", "leave"), nil, 0},
		{"joined", history("invite", "join"), nil, StateCurrent},
		{"joined, renamed", history("join", "join"), nil, StateCurrent},
		{"left", history("join", "leave"), nil, 20},
		{"left after renaming", history("join", "join", "leave"), nil, 30},
		{"left, then banned", history("join", "leave", "ban"), nil, 20},
		{"banned from join", history("join", "ban"), nil, 20},
		{"left, re-invited", history("join", "leave", "invite"), nil, 20},
		{"left, rejoined, kicked", history("join", "leave", "invite", "join", "leave"), nil, 50},
		{"invitee of a world_readable room", history("invite"), worldReadable, StateCurrent},
		{"stranger to a world_readable room", nil, worldReadable, StateCurrent},
		{"left a world_readable room", history("join", "leave"), worldReadable, StateCurrent},
	}
	for _, c := range cases {
		if got := NewVisibility("@u:x", c.members, c.vis).StateEnd(); got != c.want {
			t.Errorf("%s: StateEnd() = %d, want %d", c.name, got, c.want)
		}
	}
}
