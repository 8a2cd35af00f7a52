package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/searchtext"
)

// TestSearchConformance: both engines find the same events for Chinese,
// Japanese, Korean and Latin terms, of one character and more; an edit by
// the sender replaces the text, a redaction removes it, ciphertext and
// others' edits are never indexed; room bounds, filters, paging and the
// backfill of events stored before schema 033 behave alike.
func TestSearchConformance(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		tx, err := s.BeginWrite(ctx)
		must(err)
		must(tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}))
		must(tx.InsertRoom(ctx, storage.Room{RoomID: "!s:x", Version: "11", Creator: "@a:x", CreatedTS: 1}))
		pos := int64(0)
		add := func(room, typ, sender string, stateKey *string, client string) string {
			t.Helper()
			pos++
			e := &storage.Event{Pos: pos, EventID: fmt.Sprint("$e", pos), RoomID: room, Type: typ, StateKey: stateKey, Sender: sender,
				Depth: pos, OriginTS: pos, Client: []byte(client)}
			must(tx.InsertEvent(ctx, e, []byte("{}")))
			return e.EventID
		}
		msg := func(room, sender, body string) string {
			return add(room, "m.room.message", sender, nil, fmt.Sprintf(`{"content":{"msgtype":"m.text","body":%q}}`, body))
		}
		zh := msg("!r:x", "@a:x", "你好世界，我们在北京开会")
		ja := msg("!r:x", "@a:x", "明日は東京で会議があります")
		ko := msg("!r:x", "@a:x", "내일 학교에 갑니다")
		en := msg("!r:x", "@a:x", "Hello brave new World")
		name := add("!r:x", "m.room.name", "@a:x", sk(""), `{"content":{"name":"Project Apollo"}}`)
		topic := add("!r:x", "m.room.topic", "@a:x", sk(""), `{"content":{"topic":"weekly 会议"}}`)
		inS := msg("!s:x", "@b:x", "hello from s")
		add("!r:x", "m.room.encrypted", "@a:x", nil, `{"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"hello","body":"hello"}}`)
		add("!r:x", "m.room.message", "@a:x", nil, fmt.Sprintf(`{"content":{"msgtype":"m.text","body":"* goodbye moon","m.new_content":{"msgtype":"m.text","body":"Goodbye moon"},"m.relates_to":{"rel_type":"m.replace","event_id":%q}}}`, en))
		add("!r:x", "m.room.message", "@b:x", nil, fmt.Sprintf(`{"content":{"msgtype":"m.text","body":"* hijack","m.new_content":{"msgtype":"m.text","body":"hijacked"},"m.relates_to":{"rel_type":"m.replace","event_id":%q}}}`, zh))
		gone := msg("!r:x", "@a:x", "北京大学")
		must(tx.Redact(ctx, gone, []byte("{}"), []byte(`{"content":{}}`), "$redaction", nil))
		late := msg("!s:x", "@b:x", "hello again")
		latePos := pos
		if tx.Searchable() == 0 {
			t.Fatal("the transaction counted no searchable events")
		}
		// The writer indexes behind the sends, a pass at a time; small
		// passes here cross the pass limit.
		for reached := int64(0); reached < pos; {
			next, err := tx.IndexSearchAfter(ctx, reached, pos, 4)
			must(err)
			if next <= reached {
				t.Fatalf("index pass from %d reached %d", reached, next)
			}
			reached = next
		}
		must(tx.Commit())
		if got, err := s.SearchIndexedPos(ctx); err != nil || got != pos {
			t.Fatalf("index position after the passes: got %d (%v), want %d", got, err, pos)
		}

		both := []storage.SearchRoom{{RoomID: "!r:x"}, {RoomID: "!s:x"}}
		find := func(q storage.SearchQuery, term string) []string {
			t.Helper()
			pt := searchtext.ParseTerm(term)
			q.Tokens, q.Phrases = pt.Tokens, pt.Phrases
			if q.Rooms == nil {
				q.Rooms = both
			}
			if q.Limit == 0 {
				q.Limit = 50
			}
			hits, err := s.SearchEvents(ctx, q)
			must(err)
			var out []string
			for _, h := range hits {
				out = append(out, h.EventID)
			}
			return out
		}
		cases := []struct {
			term string
			q    storage.SearchQuery
			want []string
		}{
			{"北京", storage.SearchQuery{}, []string{zh}},
			{"北", storage.SearchQuery{}, []string{zh}},
			{"北京开会", storage.SearchQuery{}, []string{zh}},
			{"我们北京", storage.SearchQuery{}, nil}, // every pair but one is there
			{"京北", storage.SearchQuery{}, nil},
			{"世界 北京", storage.SearchQuery{}, []string{zh}},
			{"東京", storage.SearchQuery{}, []string{ja}},
			{"会議", storage.SearchQuery{}, []string{ja}},
			{"会议", storage.SearchQuery{}, []string{topic}},
			{"학교", storage.SearchQuery{}, []string{ko}},
			{"갑니다", storage.SearchQuery{}, []string{ko}},
			{"HELLO", storage.SearchQuery{}, []string{late, inS}}, // newest first; the edit took it from en
			{"goodbye", storage.SearchQuery{}, []string{en}},
			{"brave", storage.SearchQuery{}, nil},
			{"hijacked", storage.SearchQuery{}, nil},
			{"大学", storage.SearchQuery{}, nil},
			{"apollo", storage.SearchQuery{}, []string{name}},
			{"weekly", storage.SearchQuery{}, []string{topic}},
			{"hello", storage.SearchQuery{Rooms: []storage.SearchRoom{{RoomID: "!r:x"}, {RoomID: "!s:x", MaxPos: latePos - 1}}}, []string{inS}},
			{"hello", storage.SearchQuery{Before: latePos}, []string{inS}},
			{"hello", storage.SearchQuery{Limit: 1}, []string{late}},
			{"hello", storage.SearchQuery{ByRank: true, Offset: 1}, []string{}},
			{"apollo", storage.SearchQuery{Types: []string{"m.room.message"}}, nil},
			{"hello", storage.SearchQuery{NotSenders: []string{"@b:x"}}, nil},
			{"hello", storage.SearchQuery{Senders: []string{"@b:x"}, NotTypes: []string{"m.room.name"}}, []string{late, inS}},
			{"100%", storage.SearchQuery{}, nil},
			{"\u0301", storage.SearchQuery{}, nil}, // a lone mark: a token neither engine keeps
			{"a\u0301b ab", storage.SearchQuery{}, nil},
			{"北_京%", storage.SearchQuery{}, []string{zh}},   // punctuation separates terms
			{"NOT OR AND NEAR", storage.SearchQuery{}, nil}, // FTS5 operators, quoted
		}
		check := func(stage string) {
			t.Helper()
			for _, tc := range cases {
				got := find(tc.q, tc.term)
				if tc.q.ByRank && tc.q.Offset == 1 {
					if len(got) != 1 {
						t.Errorf("%s: %q by rank, offset 1: got %v, want one hit", stage, tc.term, got)
					}
					continue
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: search %q %+v: got %v, want %v", stage, tc.term, tc.q, got, tc.want)
				}
			}
		}
		check("written")
		must(s.UnindexSearch(ctx))
		if got := find(storage.SearchQuery{}, "北京"); len(got) != 0 {
			t.Fatalf("after unindexing: %v, want nothing", got)
		}
		must(s.BackfillSearch(ctx))
		check("backfilled")
	})
}
