package rooms

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

// Departed is the one rule for "out of the room now"; /messages clips a
// departed user's paging to the returned position.
func TestDeparted(t *testing.T) {
	history := func(ms ...string) []storage.Event {
		out := make([]storage.Event, len(ms))
		for i, m := range ms {
			out[i] = storage.Event{Pos: int64(10 * (i + 1)), Membership: m}
		}
		return out
	}
	for _, c := range []struct {
		name     string
		members  []storage.Event
		wantPos  int64
		departed bool
	}{
		{"never in the room", nil, 0, false},
		{"invited", history("invite"), 0, false},
		{"joined", history("join"), 0, false},
		{"knocking after leaving", history("join", "leave", "knock"), 0, false},
		{"left", history("join", "leave"), 20, true},
		{"invite rejected", history("invite", "leave"), 20, true},
		{"kicked after rejoining", history("join", "leave", "join", "leave"), 40, true},
		{"banned", history("join", "ban"), 20, true},
		{"left, then banned", history("join", "leave", "ban"), 30, true},
	} {
		pos, departed := NewVisibility("@u:x", c.members, nil).Departed()
		if pos != c.wantPos || departed != c.departed {
			t.Errorf("%s: Departed() = %d, %v, want %d, %v", c.name, pos, departed, c.wantPos, c.departed)
		}
	}
}
