package storage_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestRoomTimelinesReadOnlyTheLimit: a sync's timeline query takes the newest
// events of each room without reading the rest of its range, so an initial
// sync in a room of thousands of events costs what one in a small room does
// (issue 15 item 21: each join into a 10,000-member room renumbered the whole
// timeline). On PostgreSQL the test reads the rows each scan really returned
// (EXPLAIN ANALYZE); on SQLite it checks the plan walks the (room_id, pos)
// index and sorts nothing per room. Results are checked on both engines.
func TestRoomTimelinesReadOnlyTheLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		const big, limit = 3000, 11
		evs := []storage.Event{}
		pos := int64(0)
		for i := 0; i < big; i++ {
			pos++
			evs = append(evs, msgEv(pos, "!big:x", "@v:x", false))
			if i%1000 == 0 {
				pos++
				evs = append(evs, msgEv(pos, "!small:x", "@v:x", false))
			}
		}
		insertEvents(t, s, []string{"!big:x", "!small:x", "!empty:x"}, evs...)
		if err := s.Analyze(ctx); err != nil {
			t.Fatal(err)
		}
		bounds := []storage.RoomBound{
			{RoomID: "!big:x", Since: 0, Upto: pos},
			{RoomID: "!small:x", Since: 0, Upto: pos},
			{RoomID: "!empty:x", Since: 0, Upto: pos},
			{RoomID: "!big:x", Since: pos - 5, Upto: pos - 2}, // an incremental range inside the room
		}
		got, err := s.RoomTimelines(ctx, bounds[:3], limit)
		if err != nil {
			t.Fatal(err)
		}
		var big0, small int
		for i, e := range got {
			if i > 0 && got[i-1].Pos >= e.Pos {
				t.Fatalf("timeline out of log order at %d: %d then %d", i, got[i-1].Pos, e.Pos)
			}
			switch e.RoomID {
			case "!big:x":
				big0++
			case "!small:x":
				small++
			}
		}
		if big0 != limit || small != 3 {
			t.Errorf("got %d events of the big room and %d of the small one, want %d and 3", big0, small, limit)
		}
		if last := got[len(got)-1]; last.Pos != pos {
			t.Errorf("newest event returned = %d, want %d", last.Pos, pos)
		}
		inc, err := s.RoomTimelines(ctx, bounds[3:], limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(inc) != 3 || inc[0].Pos != pos-4 || inc[2].Pos != pos-2 {
			t.Errorf("incremental range = %d events from %v, want 3 from pos %d to %d", len(inc), positions(inc), pos-4, pos-2)
		}

		plan, err := s.TimelinePlan(ctx, bounds[:3], limit)
		if err != nil {
			t.Fatal(err)
		}
		if s.Engine() == "postgresql" {
			// Every node's rows: none may exceed what the rooms together return.
			re := regexp.MustCompile(`rows=(\d+) loops=(\d+)`)
			for _, m := range re.FindAllStringSubmatch(plan, -1) {
				rows, _ := strconv.Atoi(m[1])
				loops, _ := strconv.Atoi(m[2])
				if rows*loops > 3*limit {
					t.Errorf("a plan node returned %d rows (%d loops), want at most %d: the query read the room's range\n%s", rows*loops, loops, 3*limit, plan)
				}
			}
			return
		}
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "events_room_pos") {
			t.Errorf("plan sorts or does not walk the (room_id, pos) index:\n%s", plan)
		}
	})
}

func positions(evs []storage.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprint(e.Pos))
	}
	return out
}
