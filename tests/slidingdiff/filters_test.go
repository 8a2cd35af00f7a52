package slidingdiff_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// runFilters plays the list-filter session on srv: a space with a child,
// an encrypted room, a DM named in m.direct, an invite to a typed room and
// room tags; lists using every filter Synapse 1.163 implements, then the
// same lists after the state, tags and m.direct change; an extension
// scoped to one list; and the request-form refusals. It returns the
// responses (an error answer as {"status", "errcode", "error"}), and,
// apart, the answer to a spaces filter, which Synapse 1.163 does not
// implement.
func runFilters(t *testing.T, srv server) (session, map[string]any) {
	sfx := fmt.Sprintf("%x", rand.Uint32())
	alice, bob := srv.register(t, "alice"+sfx), srv.register(t, "bob"+sfx)
	s := session{names: map[string]string{
		alice.UserID: "@alice", bob.UserID: "@bob", "alice" + sfx: "alice", "bob" + sfx: "bob",
		alice.DeviceID: "ALICEDEVICE", bob.DeviceID: "BOBDEVICE",
	}}
	name := func(id, as string) string { s.names[id] = as; return id }
	do := func(c *hstest.Client, method, path string, body any) map[string]any {
		t.Helper()
		st, res := c.Do(method, path, body)
		if st != 200 {
			t.Fatalf("%s: %s %s = %d %s", srv.name, method, path, st, res.Raw)
		}
		var out map[string]any
		_ = json.Unmarshal([]byte(res.Raw), &out)
		return out
	}
	create := func(c *hstest.Client, body map[string]any, as string) string {
		return name(do(c, "POST", "/_matrix/client/v3/createRoom", body)["room_id"].(string), as)
	}
	state := func(c *hstest.Client, room, typ, key string, content map[string]any) {
		do(c, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/"+typ+"/"+url.PathEscape(key), content)
	}
	tag := func(room, tag string, on bool) {
		path := "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID) + "/rooms/" + url.PathEscape(room) + "/tags/" + tag
		if on {
			do(alice, "PUT", path, map[string]any{"order": 0.5})
		} else {
			do(alice, "DELETE", path, nil)
		}
	}
	// post sends one request and keeps the answer, error or not.
	post := func(query string, body map[string]any) map[string]any {
		t.Helper()
		st, res := alice.Do("POST", slidingPath+query, body)
		var out map[string]any
		_ = json.Unmarshal([]byte(res.Raw), &out)
		if st != 200 {
			out = map[string]any{"status": st, "errcode": out["errcode"], "error": out["error"]}
		}
		return out
	}
	ss := func(pos string, body map[string]any) string {
		t.Helper()
		q := ""
		if pos != "" {
			q = "?pos=" + url.QueryEscape(pos)
		}
		res := post(q, body)
		if res["status"] != nil {
			t.Fatalf("%s: sliding sync = %v", srv.name, res)
		}
		s.responses = append(s.responses, res)
		p, _ := res["pos"].(string)
		return p
	}

	plain := create(alice, map[string]any{"name": "Plain room"}, "!plain")
	secret := create(alice, map[string]any{"name": "Secret room", "initial_state": []any{
		map[string]any{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}, "!secret")
	space := create(alice, map[string]any{"name": "A space", "creation_content": map[string]any{"type": "m.space"}}, "!space")
	dm := create(alice, map[string]any{"invite": []string{bob.UserID}, "is_direct": true}, "!dm")
	do(bob, "POST", "/_matrix/client/v3/join/"+url.PathEscape(dm), map[string]any{})
	do(alice, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/account_data/m.direct", map[string]any{bob.UserID: []string{dm}})
	create(bob, map[string]any{"name": "Bob's custom", "invite": []string{alice.UserID},
		"creation_content": map[string]any{"type": "org.example.custom"}}, "!invite")
	state(alice, space, "m.space.child", plain, map[string]any{"via": []string{"example.org"}})
	tag(plain, "m.favourite", true)
	tag(secret, "u.work", true)
	do(alice, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/rooms/"+url.PathEscape(plain)+"/account_data/m.test.room", map[string]any{"y": 1})
	do(alice, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/rooms/"+url.PathEscape(secret)+"/account_data/m.test.room", map[string]any{"y": 2})

	list := func(filters map[string]any) map[string]any {
		return map[string]any{"ranges": [][]int{{0, 20}}, "timeline_limit": 1,
			"required_state": [][]string{{"m.room.create", ""}}, "filters": filters}
	}
	body := map[string]any{
		"conn_id": "filters",
		"lists": map[string]any{
			"enc":       list(map[string]any{"is_encrypted": true}),
			"not-enc":   list(map[string]any{"is_encrypted": false}),
			"dm":        list(map[string]any{"is_dm": true}),
			"invite":    list(map[string]any{"is_invite": true}),
			"spaces":    list(map[string]any{"room_types": []string{"m.space"}}),
			"untyped":   list(map[string]any{"room_types": []any{nil}}),
			"not-space": list(map[string]any{"not_room_types": []any{"m.space"}}),
			"custom":    list(map[string]any{"room_types": []any{nil, "org.example.custom"}, "not_room_types": []any{nil}}),
			"fav":       list(map[string]any{"tags": []string{"m.favourite"}}),
			"not-fav":   list(map[string]any{"not_tags": []string{"m.favourite"}}),
			"tag-wins":  list(map[string]any{"tags": []string{"m.favourite", "u.work"}, "not_tags": []string{"u.work"}}),
			"together":  list(map[string]any{"is_dm": false, "is_invite": false, "not_room_types": []any{"m.space"}, "is_encrypted": false, "future_filter": 1}),
		},
		"extensions": map[string]any{
			"account_data": map[string]any{"enabled": true, "lists": []string{"fav", "enc"}, "rooms": []string{}},
		},
	}
	pos := ss("", body) // 0: the first response

	// 1: the rooms' state, tags and m.direct change.
	state(alice, plain, "m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
	tag(plain, "m.favourite", false)
	tag(dm, "m.favourite", true)
	do(alice, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/account_data/m.direct", map[string]any{bob.UserID: []string{dm, space}})
	pos = ss(pos, body)

	// 2: the answers to a pos that is not one, and to another connection's.
	s.responses = append(s.responses, post("?pos=bogus", body))
	other := map[string]any{"conn_id": "other", "lists": body["lists"]}
	s.responses = append(s.responses, post("?pos="+url.QueryEscape(pos), other))

	// 4, 5: required_state's wildcards and $LAZY on a timeline holding an
	// invite (a member event whose target did not send it).
	do(alice, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(plain)+"/invite", map[string]any{"user_id": bob.UserID})
	sub := func(required ...[]string) map[string]any {
		return map[string]any{"conn_id": "state", "room_subscriptions": map[string]any{plain: map[string]any{
			"timeline_limit": 2, "required_state": required}}}
	}
	ss("", sub([]string{"m.room.member", "$LAZY"}, []string{"m.room.name", "*"}, []string{"m.room.member", "$ME"}))
	// (["*", ""] makes Synapse 1.163 fail with a 500: an IndexError in
	// must_await_full_state.)
	ss("", sub([]string{"*", "$ME"}))

	// 6: a timeline_limit of 0.
	ss("", map[string]any{"conn_id": "zero", "room_subscriptions": map[string]any{plain: map[string]any{
		"timeline_limit": 0, "required_state": [][]string{}}}})

	spaces := post("", map[string]any{"conn_id": "spaces", "lists": map[string]any{"in-space": list(map[string]any{"spaces": []string{space}})}})
	return s, spaces
}

// listSets returns, for each list of a response, its window's rooms,
// named and sorted: Synapse sorts a list only when its window is smaller
// than the list, so the sets are what both servers agree on here.
func listSets(res any, names map[string]string) map[string][]string {
	out := map[string][]string{}
	m, _ := res.(map[string]any)
	lists, _ := m["lists"].(map[string]any)
	for name, l := range lists {
		ops, _ := l.(map[string]any)["ops"].([]any)
		ids := []string{}
		for _, op := range ops {
			for _, id := range op.(map[string]any)["room_ids"].([]any) {
				ids = append(ids, normStr(id.(string), names))
			}
		}
		slices.Sort(ids)
		out[name] = ids
	}
	return out
}

// knownFilters are the differences of the filter session understood and
// accepted, by path prefix, with why.
var knownFilters = map[string]string{
	// Synapse answers any ["*", key] with every state event ("StateFilter
	// currently doesn't support wildcard event types", its code says);
	// Parley sends the events with that key, as MSC4186 means it.
	"response 5.rooms.!plain.required_state": "Synapse sends all state for a wildcard type",
}

// TestSlidingSyncFiltersMatchSynapse plays the list-filter session on
// Parley and on Synapse 1.163 and compares the lists' rooms and counts,
// every response field by field, and the refusals.
func TestSlidingSyncFiltersMatchSynapse(t *testing.T) {
	syn := synapseServer(t)
	srv := hstest.Start(t, hstest.Options{Store: hstest.Store{Name: "sqlite"}})
	parley := server{name: "parley", register: func(t *testing.T, name string) *hstest.Client { return srv.Register(t, name) }}
	p, pSpaces := runFilters(t, parley)
	s, sSpaces := runFilters(t, syn)
	if len(p.responses) != len(s.responses) {
		t.Fatalf("parley gave %d responses, synapse %d", len(p.responses), len(s.responses))
	}
	if os.Getenv("SLIDINGDIFF_DUMP") != "" {
		for i := range p.responses {
			t.Logf("parley %d: %s", i, js(p.responses[i]))
			t.Logf("synapse %d: %s", i, js(s.responses[i]))
		}
	}
	for i := range p.responses {
		pl, sl := listSets(p.responses[i], p.names), listSets(s.responses[i], s.names)
		for _, name := range sortedKeys(keysOf(pl, sl)) {
			if fmt.Sprint(pl[name]) != fmt.Sprint(sl[name]) {
				t.Errorf("response %d: list %s = parley %v, synapse %v", i, name, pl[name], sl[name])
			}
		}
		var diffs []string
		diff(fmt.Sprintf("response %d", i), norm(p.responses[i], p.names, ""), norm(s.responses[i], s.names, ""), &diffs)
	next:
		for _, d := range diffs {
			for prefix, why := range knownFilters {
				if strings.HasPrefix(d, prefix) {
					t.Logf("known difference (%s): %s", why, d)
					continue next
				}
			}
			t.Error(d)
		}
	}
	// Synapse 1.163 raises NotImplementedError on a spaces filter (a 500);
	// Parley implements MSC4186's: the space's m.space.child rooms.
	if sSpaces["status"] != 500 {
		t.Logf("synapse now answers a spaces filter: %s (compare it)", js(sSpaces))
	}
	if got := listSets(pSpaces, p.names)["in-space"]; fmt.Sprint(got) != "[!plain]" {
		t.Errorf("parley spaces filter = %v (%s), want [!plain]", got, js(pSpaces))
	}
}

func keysOf(ms ...map[string][]string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}
