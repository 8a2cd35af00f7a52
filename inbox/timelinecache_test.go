package inbox

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestTimelineCacheMatchesTheLog stores random reads of a room's log into the
// cache and checks that every range the cache claims to cover is exactly what
// the log holds: the newest max events of (since, upto], in order.
func TestTimelineCacheMatchesTheLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var log []storage.Event
	for p := int64(1); p <= 400; p++ {
		if rng.IntN(3) > 0 { // other positions belong to other rooms
			log = append(log, storage.Event{Pos: p, RoomID: "!r"})
		}
	}
	read := func(since, upto int64, max int) []storage.Event {
		var out []storage.Event
		for _, e := range log {
			if e.Pos > since && e.Pos <= upto {
				out = append(out, e)
			}
		}
		if len(out) > max {
			out = out[len(out)-max:]
		}
		return out
	}
	c := newTimelineCache()
	hits := 0
	for i := 0; i < 5000; i++ {
		upto := int64(rng.IntN(400) + 1)
		since := upto - int64(rng.IntN(100))
		if since < 0 {
			since = 0
		}
		max := rng.IntN(20) + 1
		got, hit := c.appendRange(nil, "!r", since, upto, max)
		want := read(since, upto, max)
		if hit {
			hits++
			if !slices.EqualFunc(got, want, func(a, b storage.Event) bool { return a.Pos == b.Pos }) {
				t.Fatalf("step %d: cache range (%d, %d] max %d = %v, want %v", i, since, upto, max, pos(got), pos(want))
			}
			continue
		}
		c.store("!r", since, upto, want, max, c.generation())
	}
	if hits == 0 {
		t.Errorf("no read was served from the cache")
	}
	// A store that raced with a drop is not kept.
	gen := c.generation()
	c.drop("!r")
	c.store("!r", 0, 400, read(0, 400, 10), 10, gen)
	if _, hit := c.appendRange(nil, "!r", 390, 400, 10); hit {
		t.Errorf("a read from before a drop was stored")
	}
}

func pos(evs []storage.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Pos
	}
	return out
}
