package rooms

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestHistoryOfBackfilled: for history stored below position 0 (a join's
// state, backfilled pages), which arrived out of order, the visibility in
// force is the last change before the event by depth, wherever its
// position is; live events keep stream order.
func TestHistoryOfBackfilled(t *testing.T) {
	hv := func(pos, depth int64, value string) storage.Event {
		return storage.Event{Pos: pos, Depth: depth, Client: []byte(`{"content":{"history_visibility":"` + value + `"}}`)}
	}
	cases := []struct {
		name  string
		vis   []storage.Event // in position order, as the store gives them
		event storage.Event
		want  string
	}{
		{"a join's state sets it for the backfilled history after it",
			[]storage.Event{hv(-3, 4, "joined")}, storage.Event{Pos: -200, Depth: 300}, "joined"},
		{"a change inside the backfilled history applies after it",
			[]storage.Event{hv(-150, 250, "invited"), hv(-3, 4, "joined")}, storage.Event{Pos: -200, Depth: 300}, "invited"},
		{"and not before it",
			[]storage.Event{hv(-150, 250, "invited"), hv(-3, 4, "joined")}, storage.Event{Pos: -300, Depth: 100}, "joined"},
		{"one held from an earlier stay applies to the gap after it",
			[]storage.Event{hv(-3, 900, "world_readable"), hv(5, 3, "joined")}, storage.Event{Pos: -200, Depth: 300}, "joined"},
		{"a later change does not apply",
			[]storage.Event{hv(-3, 900, "joined"), hv(40, 1000, "world_readable")}, storage.Event{Pos: -200, Depth: 300}, "shared"},
		{"live events keep stream order",
			[]storage.Event{hv(-3, 4, "joined"), hv(40, 1000, "world_readable")}, storage.Event{Pos: 50, Depth: 999}, "world_readable"},
	}
	for _, c := range cases {
		v := NewVisibility("@u:here", nil, c.vis)
		if got := v.historyOf(&c.event); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
