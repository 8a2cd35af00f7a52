package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// /search (issue 14), black-box on both stores.

const searchPath = "/_matrix/client/v3/search"

// searchBody builds a room_events request for term; extra merges into
// room_events.
func searchBody(term string, extra map[string]any) map[string]any {
	re := map[string]any{"search_term": term}
	for k, v := range extra {
		re[k] = v
	}
	return map[string]any{"search_categories": map[string]any{"room_events": re}}
}

// searchIDs runs a search and returns the result event IDs in order and
// the room_events object.
func searchIDs(t *testing.T, c *hstest.Client, term string, extra map[string]any, nextBatch string) ([]string, gjson.Result) {
	t.Helper()
	p := searchPath
	if nextBatch != "" {
		p += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	re := c.MustDo("POST", p, searchBody(term, extra)).Get("search_categories.room_events")
	var out []string
	for _, r := range re.Get("results").Array() {
		out = append(out, r.Get("result.event_id").String())
	}
	return out, re
}

// TestSearchCJKAndLatin: Chinese, Japanese and Korean phrases (one
// character, a word, a longer phrase) and Latin words are found, in the
// message body, the room name and the topic; an edit's new text is found
// and its old text no longer; a redacted message is gone; ciphertext is
// never indexed.
func TestSearchCJKAndLatin(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "name": "Project Apollo", "topic": "每周 会议"})
			zh := alice.Send(room, "1", "你好世界，我们明天在北京开会")
			ja := alice.Send(room, "2", "明日は東京で会議があります")
			ko := alice.Send(room, "3", "내일 학교에 갑니다")
			en := alice.Send(room, "4", "The quick brown Fox")
			gone := alice.Send(room, "5", "北京大学 secret")
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/redact/"+hstest.Esc(gone)+"/redact1", map[string]any{})
			edit(alice, room, en, "The slow red dog")
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.encrypted/e1",
				map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "北京 fox", "body": "北京 fox"})

			cases := []struct {
				term string
				keys []string
				want []string
			}{
				{"北京", nil, []string{zh}},
				{"北", nil, []string{zh}},
				{"北京开会", nil, []string{zh}},
				{"北京大学", nil, nil},
				{"开会北京", nil, nil},
				{"東京", nil, []string{ja}},
				{"会議", nil, []string{ja}},
				{"학교", nil, []string{ko}},
				{"DOG", nil, []string{en}},
				{"fox", nil, nil},
				{"secret", nil, nil},
				{"apollo", nil, []string{"name"}},
				{"会议", nil, []string{"topic"}},
				{"apollo", []string{"content.body"}, nil},
			}
			for _, tc := range cases {
				extra := map[string]any{}
				if tc.keys != nil {
					extra["keys"] = tc.keys
				}
				got, re := searchIDs(t, alice, tc.term, extra, "")
				var want []string
				for _, w := range tc.want {
					switch w {
					case "name", "topic":
						// the state event's ID, read from the result
						for _, r := range re.Get("results").Array() {
							if r.Get("result.type").String() == "m.room."+w {
								w = r.Get("result.event_id").String()
							}
						}
					}
					want = append(want, w)
				}
				if !slices.Equal(got, want) {
					t.Errorf("search %q keys %v: got %v, want %v", tc.term, tc.keys, got, want)
				}
				if c := int(re.Get("count").Int()); c != len(want) {
					t.Errorf("search %q: count %d, want %d", tc.term, c, len(want))
				}
			}
			_, re := searchIDs(t, alice, "北京开会 Dog", nil, "")
			if hl := re.Get("highlights").String(); hl != `["北京开会","dog"]` {
				t.Errorf("highlights = %s, want [\"北京开会\",\"dog\"]", hl)
			}
			_, re = searchIDs(t, alice, "dog", nil, "")
			if b := re.Get(`results.0.result.unsigned.m\.relations.m\.replace`); !b.Exists() {
				t.Errorf("the edited result carries no bundled edit: %s", re.Get("results.0.result.unsigned").Raw)
			}
		})
	}
}

// TestSearchPagingAndOrder: next_batch pages through every match once,
// newest first for order_by recent and by rank for rank; context, profiles,
// state and groupings come with the results.
func TestSearchPagingAndOrder(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc("@alice:localhost")+"/displayname", map[string]any{"displayname": "Alice A"})
			r1 := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			r2 := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			var sent []string
			for i := range 7 {
				room := r1
				if i%2 == 1 {
					room = r2
				}
				body := fmt.Sprintf("蘋果 apple number %d", i)
				if i == 3 {
					body = "apple apple apple 蘋果 蘋果" // the best rank
				}
				sent = append(sent, alice.Send(room, fmt.Sprint("p", i), body))
				alice.Send(room, fmt.Sprint("q", i), "filler")
			}
			newestFirst := slices.Clone(sent)
			slices.Reverse(newestFirst)
			for _, order := range []string{"recent", "rank"} {
				var all []string
				next := ""
				for page := 0; page < 10; page++ {
					got, re := searchIDs(t, alice, "APPLE 蘋果", map[string]any{"order_by": order, "filter": map[string]any{"limit": 3}}, next)
					if len(got) > 3 {
						t.Fatalf("%s page %d: %d results, want at most 3", order, page, len(got))
					}
					if c := re.Get("count").Int(); c != 7 {
						t.Errorf("%s page %d: count %d, want 7", order, page, c)
					}
					all = append(all, got...)
					next = re.Get("next_batch").String()
					if next == "" {
						break
					}
				}
				switch order {
				case "recent":
					if !slices.Equal(all, newestFirst) {
						t.Errorf("recent, paged: got %v, want %v", all, newestFirst)
					}
				case "rank":
					if len(all) != 7 || all[0] != sent[3] {
						t.Errorf("rank, paged: got %v, want 7 results with %s first", all, sent[3])
					}
					sorted := slices.Clone(all)
					sort.Strings(sorted)
					want := slices.Clone(sent)
					sort.Strings(want)
					if !slices.Equal(sorted, want) {
						t.Errorf("rank, paged: got %v, want each of %v once", all, sent)
					}
				}
			}
			// Context, profiles, state and groupings.
			_, re := searchIDs(t, alice, "number 6", map[string]any{
				"event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true},
				"include_state": true,
				"groupings":     map[string]any{"group_by": []any{map[string]any{"key": "room_id"}, map[string]any{"key": "sender"}}},
			}, "")
			res := re.Get("results.0")
			if res.Get("result.event_id").String() != sent[6] {
				t.Fatalf("search \"number 6\" = %s, want %s", res.Raw, sent[6])
			}
			if b := res.Get("context.events_before.0.content.body").String(); b != "filler" {
				t.Errorf("context before = %q, want filler", b)
			}
			if a := res.Get("context.events_after.0.content.body").String(); a != "filler" {
				t.Errorf("context after = %q, want filler", a)
			}
			if !res.Get("context.start").Exists() || !res.Get("context.end").Exists() {
				t.Errorf("context has no start or end: %s", res.Get("context").Raw)
			}
			if dn := res.Get(`context.profile_info.@alice:localhost.displayname`).String(); dn != "Alice A" {
				t.Errorf("profile_info displayname = %q, want Alice A (%s)", dn, res.Get("context.profile_info").Raw)
			}
			if n := len(re.Get("state." + strings.ReplaceAll(r1, ".", `\.`)).Array()); n == 0 {
				t.Errorf("include_state: no state for %s: %s", r1, re.Get("state").Raw)
			}
			if g := re.Get("groups.room_id." + strings.ReplaceAll(r1, ".", `\.`) + ".results.0").String(); g != sent[6] {
				t.Errorf("groups.room_id = %s, want %s in %s", re.Get("groups").Raw, sent[6], r1)
			}
			if g := re.Get(`groups.sender.@alice:localhost.order`).Int(); g != 1 {
				t.Errorf("groups.sender = %s, want alice at order 1", re.Get("groups.sender").Raw)
			}
			// A rank token does not page a recent search.
			_, re = searchIDs(t, alice, "apple", map[string]any{"order_by": "rank", "filter": map[string]any{"limit": 1}}, "")
			code, body := alice.Do("POST", searchPath+"?next_batch="+url.QueryEscape(re.Get("next_batch").String()), searchBody("apple", nil))
			if code != 400 || body.Get("errcode").String() != "M_INVALID_PARAM" {
				t.Errorf("rank token on a recent search = %d %s, want 400 M_INVALID_PARAM", code, body.Raw)
			}
			// The r0 alias answers too.
			if code, body := alice.Do("POST", "/_matrix/client/r0/search", searchBody("apple", nil)); code != 200 {
				t.Errorf("r0 search = %d %s, want 200", code, body.Raw)
			}
		})
	}
}

// TestSearchRefusals: bad bodies change nothing and get the spec's errors.
func TestSearchRefusals(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			re := func(m map[string]any) map[string]any {
				return map[string]any{"search_categories": map[string]any{"room_events": m}}
			}
			for _, tc := range []struct {
				name    string
				body    any
				query   string
				code    int
				errcode string
			}{
				{"no categories", map[string]any{}, "", 400, "M_BAD_JSON"},
				{"categories not an object", map[string]any{"search_categories": 3}, "", 400, "M_BAD_JSON"},
				{"no term", re(map[string]any{}), "", 400, "M_BAD_JSON"},
				{"term a number", re(map[string]any{"search_term": 7}), "", 400, "M_BAD_JSON"},
				{"empty term", re(map[string]any{"search_term": "  "}), "", 400, "M_INVALID_PARAM"},
				{"term too long", re(map[string]any{"search_term": strings.Repeat("a ", 600)}), "", 400, "M_INVALID_PARAM"},
				{"unknown key", re(map[string]any{"search_term": "x", "keys": []string{"content.msgtype"}}), "", 400, "M_INVALID_PARAM"},
				{"keys not a list", re(map[string]any{"search_term": "x", "keys": "content.body"}), "", 400, "M_BAD_JSON"},
				{"unknown order", re(map[string]any{"search_term": "x", "order_by": "oldest"}), "", 400, "M_INVALID_PARAM"},
				{"negative limit", re(map[string]any{"search_term": "x", "filter": map[string]any{"limit": -1}}), "", 400, "M_INVALID_PARAM"},
				{"limit a string", re(map[string]any{"search_term": "x", "filter": map[string]any{"limit": "5"}}), "", 400, "M_BAD_JSON"},
				{"negative context", re(map[string]any{"search_term": "x", "event_context": map[string]any{"before_limit": -2}}), "", 400, "M_INVALID_PARAM"},
				{"unknown grouping", re(map[string]any{"search_term": "x", "groupings": map[string]any{"group_by": []any{map[string]any{"key": "type"}}}}), "", 400, "M_INVALID_PARAM"},
				{"bad next_batch", re(map[string]any{"search_term": "x"}), "?next_batch=zzz", 400, "M_INVALID_PARAM"},
				{"empty next_batch number", re(map[string]any{"search_term": "x"}), "?next_batch=p", 400, "M_INVALID_PARAM"},
				{"no room_events", map[string]any{"search_categories": map[string]any{}}, "", 200, ""},
				{"punctuation only", re(map[string]any{"search_term": "?!。"}), "", 200, ""},
			} {
				code, body := alice.Do("POST", searchPath+tc.query, tc.body)
				if code != tc.code || body.Get("errcode").String() != tc.errcode {
					t.Errorf("%s: got %d %s, want %d %s", tc.name, code, body.Raw, tc.code, tc.errcode)
				}
			}
			code, body := alice.Do("POST", searchPath, "not json")
			if code != 400 || body.Get("errcode").String() != "M_NOT_JSON" && body.Get("errcode").String() != "M_BAD_JSON" {
				t.Errorf("not JSON: got %d %s, want 400 M_NOT_JSON", code, body.Raw)
			}
		})
	}
}
