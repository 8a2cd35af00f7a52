package relations

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// fakeStore answers the bundle queries from memory: parents p0..pn-1, each
// with one thread reply and one edit by the parent's sender.
type fakeStore struct {
	Store   // the listing queries are not used here
	n       int
	queries int
}

func (f *fakeStore) RelationAggregates(ctx context.Context, viewer string, parentIDs []string) ([]storage.RelationAggregate, error) {
	f.queries++
	var out []storage.RelationAggregate
	for i := range parentIDs {
		out = append(out,
			storage.RelationAggregate{ParentID: parentIDs[i], RelType: "m.thread", Count: 2, LatestPos: int64(1000 + 2*i)},
			storage.RelationAggregate{ParentID: parentIDs[i], RelType: "m.replace", Count: 1, LatestPos: int64(1001 + 2*i)},
			storage.RelationAggregate{ParentID: parentIDs[i], RelType: "m.reference", Count: 1, EventID: "$ref" + fmt.Sprint(i)})
	}
	return out, nil
}

func (f *fakeStore) EventsAt(ctx context.Context, positions []int64) ([]storage.Event, error) {
	f.queries++
	out := make([]storage.Event, len(positions))
	for i, p := range positions {
		out[i] = storage.Event{Pos: p, EventID: fmt.Sprint("$e", p), RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x",
			Client: []byte(fmt.Sprintf(`{"type":"m.room.message","event_id":"$e%d","content":{"body":"x"}}`, p))}
	}
	return out, nil
}

type seeAll struct{}

func (seeAll) CanSee(*storage.Event) bool { return true }

func page(n int) []storage.Event {
	evs := make([]storage.Event, n)
	for i := range evs {
		evs[i] = storage.Event{Pos: int64(i + 1), EventID: fmt.Sprint("$p", i), RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x",
			Client: []byte(fmt.Sprintf(`{"type":"m.room.message","event_id":"$p%d","content":{"body":"hi"}}`, i))}
	}
	evs[0].Unsigned = []byte(`{"prev_content":{"body":"old"}}`)
	return evs
}

func TestBundleKeepsStoredUnsigned(t *testing.T) {
	f := &fakeStore{n: 3}
	s := New(f, nil)
	evs := page(3)
	if err := s.Bundle(context.Background(), seeAll{}, rooms.Viewer{UserID: "@b:x"}, "!r:x", evs); err != nil {
		t.Fatal(err)
	}
	if f.queries != 4 { // aggregates and latest events, then the same for the latest thread replies
		t.Errorf("queries = %d, want 4 for the whole page", f.queries)
	}
	var u struct {
		Relations   map[string]json.RawMessage `json:"m.relations"`
		PrevContent map[string]string          `json:"prev_content"`
	}
	if err := json.Unmarshal(evs[0].Unsigned, &u); err != nil {
		t.Fatalf("unsigned %s is not JSON: %v", evs[0].Unsigned, err)
	}
	if u.PrevContent["body"] != "old" || len(u.Relations) != 3 {
		t.Errorf("unsigned = %s, want prev_content kept and three relation kinds", evs[0].Unsigned)
	}
	for i := range evs {
		rendered := rooms.AppendClientEvent(nil, &evs[i], 0, rooms.Viewer{})
		if !json.Valid(rendered) {
			t.Errorf("event %d renders invalid JSON: %s", i, rendered)
		}
	}
}

// BenchmarkBundle measures the in-memory cost of bundling a /messages page
// of 50 events that each have a thread, an edit and a reference, the
// latest replies bundled in turn (the queries are faked: this is the
// rendering and bookkeeping).
func BenchmarkBundle(b *testing.B) {
	s := New(&fakeStore{}, nil)
	base := page(50)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		evs := append([]storage.Event(nil), base...)
		if err := s.Bundle(context.Background(), seeAll{}, rooms.Viewer{UserID: "@b:x"}, "!r:x", evs); err != nil {
			b.Fatal(err)
		}
	}
}
