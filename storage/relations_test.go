package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestRelationOf(t *testing.T) {
	for _, tc := range []struct {
		client        string
		ok            bool
		parent, rtype string
	}{
		{`{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$a","key":"x"}}}`, true, "$a", "m.annotation"},
		{`{"content":{"m.relates_to":{"rel_type":"m.thread","event_id":"$t","is_falling_back":true}}}`, true, "$t", "m.thread"},
		{`{"content":{"m.relates_to":{"m.in_reply_to":{"event_id":"$r"}}}}`, false, "", ""}, // a plain reply is no relation
		{`{"content":{"m.relates_to":{"rel_type":"m.replace","event_id":7}}}`, false, "", ""},
		{`{"content":{"m.relates_to":{"rel_type":"","event_id":"$a"}}}`, false, "", ""},
		{`{"content":{"m.relates_to":"$a"}}`, false, "", ""},
		{`{"content":{"body":"hi"}}`, false, "", ""},
		{`not json`, false, "", ""},
	} {
		rel, ok := storage.RelationOf([]byte(tc.client))
		if ok != tc.ok || rel.RelatesTo != tc.parent || rel.RelType != tc.rtype {
			t.Errorf("RelationOf(%s) = %q %q %v, want %q %q %v", tc.client, rel.RelatesTo, rel.RelType, ok, tc.parent, tc.rtype, tc.ok)
		}
	}
}

// FuzzRelationOf: any client JSON, valid or not, parses without panic, and
// a relation it reports always names a parent and a type.
func FuzzRelationOf(f *testing.F) {
	f.Add([]byte(`{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$a","key":"x"}}}`))
	f.Add([]byte(`{"content":{"m.relates_to":{"rel_type":["x"],"event_id":{"a":1}}}}`))
	f.Add([]byte(`{"content":{"m.relates_to":`))
	f.Fuzz(func(t *testing.T, client []byte) {
		rel, ok := storage.RelationOf(client)
		if ok && (rel.RelatesTo == "" || rel.RelType == "") {
			t.Errorf("RelationOf(%q) = %+v, ok with an empty field", client, rel)
		}
	})
}

// TestBackfillRelations: events stored before schema 029 are indexed once,
// in several batches, at Open; the backfill then leaves nothing behind.
func TestBackfillRelations(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		tx, err := s.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}))
		ev := func(pos int64, client string) *storage.Event {
			return &storage.Event{Pos: pos, EventID: fmt.Sprint("$e", pos), RoomID: "!r:x", Type: "m.reaction", Sender: "@a:x",
				Depth: pos, OriginTS: pos, Client: []byte(client)}
		}
		must(tx.InsertEvent(ctx, ev(1, `{"content":{"body":"parent"}}`), []byte("{}")))
		const n = 1203 // more than two batches
		for i := int64(2); i < 2+n; i++ {
			c := `{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e1","key":"k"}}}`
			if i%3 == 0 {
				c = `{"content":{"body":"not a relation, mentions m.relates_to"}}`
			}
			must(tx.InsertEvent(ctx, ev(i, c), []byte("{}")))
		}
		must(tx.Commit())
		count := func() int {
			t.Helper()
			evs, err := s.Relations(ctx, storage.RelationQuery{RoomID: "!r:x", ParentID: "$e1", Depth: 1, Limit: 5000})
			must(err)
			return len(evs)
		}
		want := count()
		if want < 800 {
			t.Fatalf("indexed by the writer: %d relations, want about 800", want)
		}
		must(s.UnindexRelations(ctx))
		if got := count(); got != 0 {
			t.Fatalf("after unindexing: %d relations, want 0", got)
		}
		must(s.BackfillRelations(ctx))
		if got := count(); got != want {
			t.Errorf("after backfill: %d relations, want %d", got, want)
		}
		must(s.BackfillRelations(ctx)) // done: a no-op
		if got := count(); got != want {
			t.Errorf("after a second backfill: %d relations, want %d", got, want)
		}
	})
}
