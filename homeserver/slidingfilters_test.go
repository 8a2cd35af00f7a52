package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// listSet returns the room IDs in a list's first window, sorted.
func listSet(res gjson.Result, list string) []string {
	ids := roomIDs(res, list)
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func putState(c *hstest.Client, room, typ, key string, content map[string]any) {
	c.MustDo("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/"+typ+"/"+url.PathEscape(key), content)
}

func tag(c *hstest.Client, room, name string, on bool) {
	path := "/_matrix/client/v3/user/" + url.PathEscape(c.UserID) + "/rooms/" + url.PathEscape(room) + "/tags/" + url.PathEscape(name)
	if on {
		c.MustDo("PUT", path, map[string]any{"order": 0.5})
	} else {
		c.MustDo("DELETE", path, nil)
	}
}

// TestSlidingSyncListFilters (issue 14): every MSC4186 list filter Synapse
// 1.163 reads, alone and together, on a first response and after the
// rooms' state and tags change on the same connection.
func TestSlidingSyncListFilters(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			plain := alice.CreateRoom(map[string]any{"name": "Plain room"})
			secret := alice.CreateRoom(map[string]any{"name": "Secret room", "initial_state": []any{
				map[string]any{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
			space := alice.CreateRoom(map[string]any{"name": "A space", "creation_content": map[string]any{"type": "m.space"}})
			dm := alice.CreateRoom(map[string]any{"is_direct": true, "invite": []string{bob.UserID}})
			bob.Join(dm)
			alice.MustDo("PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/account_data/m.direct",
				map[string]any{bob.UserID: []string{dm}})
			inv := bob.CreateRoom(map[string]any{"name": "Bob's custom", "invite": []string{alice.UserID},
				"creation_content": map[string]any{"type": "org.example.custom"}})
			putState(alice, space, "m.space.child", plain, map[string]any{"via": []string{"example.org"}})
			putState(alice, space, "m.space.child", secret, map[string]any{}) // no via: not a child
			putState(alice, space, "m.space.child", "!elsewhere:example.org", map[string]any{"via": []string{"example.org"}})
			tag(alice, plain, "m.favourite", true)
			tag(alice, secret, "u.work", true)

			yes, no := true, false
			f := func(filters map[string]any) map[string]any {
				return map[string]any{"ranges": [][]int{{0, 20}}, "timeline_limit": 0, "required_state": [][]string{}, "filters": filters}
			}
			lists := map[string]any{
				"enc":           f(map[string]any{"is_encrypted": yes}),
				"not-enc":       f(map[string]any{"is_encrypted": no}),
				"dm":            f(map[string]any{"is_dm": yes}),
				"invite":        f(map[string]any{"is_invite": yes}),
				"in-space":      f(map[string]any{"spaces": []string{space}}),
				"unknown-space": f(map[string]any{"spaces": []string{"!nope:example.org"}}),
				"spaces":        f(map[string]any{"room_types": []string{"m.space"}}),
				"untyped":       f(map[string]any{"room_types": []any{nil}}),
				"not-space":     f(map[string]any{"not_room_types": []any{"m.space"}}),
				"custom-or-no":  f(map[string]any{"room_types": []any{nil, "org.example.custom"}, "not_room_types": []any{nil}}),
				"no-types":      f(map[string]any{"room_types": []any{}}),
				"fav":           f(map[string]any{"tags": []string{"m.favourite"}}),
				"not-fav":       f(map[string]any{"not_tags": []string{"m.favourite"}}),
				"tag-wins":      f(map[string]any{"tags": []string{"m.favourite", "u.work"}, "not_tags": []string{"u.work"}}),
				"name":          f(map[string]any{"room_name_like": "ECR"}),
				"together":      f(map[string]any{"is_dm": no, "is_invite": no, "not_room_types": []any{"m.space"}, "is_encrypted": no}),
				"unknown-key":   f(map[string]any{"is_future": true, "is_dm": yes}),
			}
			body := map[string]any{"conn_id": "filters", "lists": lists}
			res := sliding(t, alice, "", 0, body)
			want := map[string][]string{
				"enc":           {secret},
				"not-enc":       {plain, space, dm, inv},
				"dm":            {dm},
				"invite":        {inv},
				"in-space":      {plain},
				"unknown-space": {},
				"spaces":        {space},
				"untyped":       {plain, secret, dm},
				"not-space":     {plain, secret, dm, inv},
				"custom-or-no":  {inv},
				"no-types":      {},
				"fav":           {plain},
				"not-fav":       {secret, space, dm, inv},
				"tag-wins":      {plain},
				"name":          {secret},
				"together":      {plain},
				"unknown-key":   {dm},
			}
			check := func(step string, res gjson.Result, want map[string][]string) {
				t.Helper()
				for list, ids := range want {
					if got, w := listSet(res, list), sorted(ids...); fmt.Sprint(got) != fmt.Sprint(w) {
						t.Errorf("%s: list %s = %v, want %v", step, list, got, w)
					}
					if got := res.Get("lists." + gkey(list) + ".count").Int(); got != int64(len(ids)) {
						t.Errorf("%s: list %s count = %d, want %d", step, list, got, len(ids))
					}
				}
			}
			check("first response", res, want)

			// The state and tags change: the same connection's lists follow.
			putState(alice, plain, "m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
			putState(alice, space, "m.space.child", plain, map[string]any{})
			putState(alice, space, "m.space.child", dm, map[string]any{"via": []string{"example.org"}})
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(secret)+"/state/m.room.name/", map[string]any{"name": "Open"})
			tag(alice, plain, "m.favourite", false)
			tag(alice, dm, "m.favourite", true)
			res = sliding(t, alice, res.Get("pos").String(), 0, body)
			want["enc"], want["not-enc"] = []string{plain, secret}, []string{space, dm, inv}
			want["in-space"] = []string{dm}
			want["name"] = []string{}
			want["fav"], want["not-fav"], want["tag-wins"] = []string{dm}, []string{plain, secret, space, inv}, []string{dm}
			want["together"] = []string{}
			check("after changes", res, want)

			// A filter first used on a connection whose rooms changed while no
			// list read state reads them afresh.
			plainOnly := map[string]any{"conn_id": "late", "lists": map[string]any{"all": f(nil)}}
			pos := sliding(t, alice, "", 0, plainOnly).Get("pos").String()
			putState(alice, dm, "m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
			res = sliding(t, alice, pos, 0, map[string]any{"conn_id": "late", "lists": map[string]any{"rooms": f(map[string]any{"not_room_types": []string{"m.space"}})}})
			check("late filter", res, map[string][]string{"rooms": {plain, secret, dm, inv}})
			// A filter reading a state type the connection has not read yet
			// (encryption, after create only) reads it for every room.
			res = sliding(t, alice, res.Get("pos").String(), 0, map[string]any{"conn_id": "late", "lists": map[string]any{"enc": f(map[string]any{"is_encrypted": yes})}})
			check("new state type", res, map[string][]string{"enc": {plain, secret, dm}})
		})
	}
}

// TestSlidingSyncFilterRefusals: malformed filters are 400 M_BAD_JSON,
// as Synapse's strict types refuse them; unknown keys are ignored.
func TestSlidingSyncFilterRefusals(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Store: hstest.Store{Name: "sqlite"}})
	alice := srv.Register(t, "alice")
	long := make([]string, 101)
	for i := range long {
		long[i] = fmt.Sprint("t", i)
	}
	for _, bad := range []any{
		`{"lists":{"a":{"filters":{"is_encrypted":"yes"}}}}`,
		`{"lists":{"a":{"filters":{"room_types":[1]}}}}`,
		`{"lists":{"a":{"filters":{"spaces":"!a:b"}}}}`,
		`{"lists":{"a":{"filters":{"tags":[true]}}}}`,
		`{"lists":{"a":{"filters":{"room_name_like":5}}}}`,
		`{"lists":{"` + fmt.Sprintf("%065d", 0) + `":{}}}`,
		map[string]any{"lists": map[string]any{"a": map[string]any{"filters": map[string]any{"not_tags": long}}}},
		`{"extensions":{"account_data":{"enabled":true,"lists":"all"}}}`,
	} {
		var body any = bad
		if s, ok := bad.(string); ok {
			body = []byte(s)
		}
		if st, res := alice.Do("POST", slidingPath, body); st != 400 || res.Get("errcode").String() != "M_BAD_JSON" {
			t.Errorf("%v: %d %s, want 400 M_BAD_JSON", bad, st, res.Raw)
		}
	}
	ok := `{"lists":{"a":{"ranges":[[0,1]],"filters":{"is_future":[1,2],"spaces":null}}},"extensions":{"io.element.msc4308.thread_subscriptions":{"enabled":true},"x":7}}`
	if st, res := alice.Do("POST", slidingPath, []byte(ok)); st != 200 {
		t.Errorf("unknown filter and extension keys: %d %s, want 200", st, res.Raw)
	}
}

// TestSlidingSyncRequestForm (issue 14): the request form Synapse 1.163
// reads. pos and timeout come from the query string only; a malformed pos
// is Synapse's "Invalid stream token", an unknown one M_UNKNOWN_POS; a
// negative timeout is M_INVALID_PARAM; an extension's lists and rooms
// pick the rooms it reports on.
func TestSlidingSyncRequestForm(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			fav := alice.CreateRoom(map[string]any{"name": "Fav"})
			other := alice.CreateRoom(map[string]any{"name": "Other"})
			sub := alice.CreateRoom(map[string]any{"name": "Sub", "invite": []string{bob.UserID}})
			bob.Join(sub)
			for _, r := range []string{fav, other, sub} {
				alice.MustDo("PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/rooms/"+url.PathEscape(r)+"/account_data/m.test", map[string]any{"r": r})
			}
			tag(alice, fav, "m.favourite", true)
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(sub)+"/typing/"+url.PathEscape(bob.UserID), map[string]any{"typing": true, "timeout": 30000})

			list := func(filters map[string]any) map[string]any {
				return map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "required_state": [][]string{}, "filters": filters}
			}
			body := map[string]any{
				"conn_id": "form",
				"lists": map[string]any{
					"fav":  list(map[string]any{"tags": []string{"m.favourite"}}),
					"rest": list(map[string]any{"not_tags": []string{"m.favourite"}}),
				},
				"room_subscriptions": map[string]any{sub: map[string]any{"timeline_limit": 1, "required_state": [][]string{}}},
				"extensions": map[string]any{
					"account_data": map[string]any{"enabled": true, "lists": []string{"fav"}, "rooms": []string{}},
					"typing":       map[string]any{"enabled": true, "lists": []string{}, "rooms": []string{sub}},
					"receipts":     map[string]any{"enabled": true, "lists": nil, "rooms": nil},
				},
			}
			res := sliding(t, alice, "", 0, body)
			rooms := res.Get("extensions.account_data.rooms").Map()
			if _, ok := rooms[fav]; !ok || len(rooms) != 1 {
				t.Errorf("account_data rooms = %s, want only the fav list's room %s", res.Get("extensions.account_data.rooms").Raw, fav)
			}
			typing := res.Get("extensions.typing.rooms").Map()
			if _, ok := typing[sub]; !ok || len(typing) != 1 {
				t.Errorf("typing rooms = %s, want only the subscription %s", res.Get("extensions.typing.rooms").Raw, sub)
			}
			if r := res.Get("extensions.receipts.rooms").Map(); len(r) != 0 {
				t.Errorf("receipts rooms = %s, want none (lists and rooms null)", res.Get("extensions.receipts.rooms").Raw)
			}

			// pos and timeout in the body are not read: a body pos does not
			// continue the connection.
			pos := res.Get("pos").String()
			withPos := map[string]any{"conn_id": "form", "pos": pos, "timeout": 30000, "lists": body["lists"]}
			again := alice.MustDo("POST", slidingPath, withPos)
			if !again.Get("rooms." + gkey(fav) + ".initial").Bool() {
				t.Errorf("a body pos continued the connection: %s", again.Get("rooms").Raw)
			}

			for _, c := range []struct {
				query, code, msg string
			}{
				{"pos=bogus", "M_UNKNOWN", "Invalid stream token"},
				{"pos=" + url.QueryEscape("00000000_1"), "M_UNKNOWN_POS", "Unknown position"},
				{"pos=" + url.QueryEscape(pos), "M_UNKNOWN_POS", "Unknown position"}, // the body-pos request restarted "form"
				{"timeout=-1", "M_INVALID_PARAM", ""},
				{"timeout=soon", "M_INVALID_PARAM", ""},
			} {
				st, res := alice.Do("POST", slidingPath+"?"+c.query, map[string]any{"conn_id": "form"})
				if st != 400 || res.Get("errcode").String() != c.code || (c.msg != "" && res.Get("error").String() != c.msg) {
					t.Errorf("%s: %d %s, want 400 %s %q", c.query, st, res.Raw, c.code, c.msg)
				}
			}
		})
	}
}

// TestSlidingSyncTimelineLimitZero: timeline_limit 0 sends no timeline,
// limited or num_live, as Synapse answers; the state still follows the
// room's newest events.
func TestSlidingSyncTimelineLimitZero(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"name": "Zero"})
			alice.Send(room, "t1", "hello")
			body := map[string]any{"conn_id": "zero", "room_subscriptions": map[string]any{room: map[string]any{
				"timeline_limit": 0, "required_state": [][]string{{"m.room.name", ""}}}}}
			res := sliding(t, alice, "", 0, body)
			r := res.Get("rooms." + gkey(room))
			for _, k := range []string{"timeline", "limited", "num_live"} {
				if r.Get(k).Exists() {
					t.Errorf("first response has %s: %s", k, r.Raw)
				}
			}
			if r.Get("name").String() != "Zero" || !stateKeys(r)["m.room.name|"] {
				t.Errorf("first response = %s, want the name and its state", r.Raw)
			}
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/m.room.name/", map[string]any{"name": "Renamed"})
			res = sliding(t, alice, res.Get("pos").String(), 0, body)
			r = res.Get("rooms." + gkey(room))
			if r.Get("timeline").Exists() || r.Get("name").String() != "Renamed" || r.Get("required_state.0.content.name").String() != "Renamed" {
				t.Errorf("after a rename = %s, want the new name and state, no timeline", r.Raw)
			}
			// A message skipped under timeline_limit 0 comes once the limit
			// grows again.
			one := map[string]any{"conn_id": "zero", "room_subscriptions": map[string]any{room: map[string]any{
				"timeline_limit": 1, "required_state": [][]string{{"m.room.name", ""}}}}}
			pos := sliding(t, alice, res.Get("pos").String(), 0, one).Get("pos").String()
			alice.Send(room, "t2", "skipped")
			pos = sliding(t, alice, pos, 0, body).Get("pos").String()
			r = sliding(t, alice, pos, 0, one).Get("rooms." + gkey(room))
			if got := r.Get("timeline.0.content.body").String(); got != "skipped" {
				t.Errorf("after the limit grows = %s, want the skipped message", r.Raw)
			}
			// The same when the room is sent under the 0 for a state change.
			pos = sliding(t, alice, pos, 0, one).Get("pos").String()
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/m.room.name/", map[string]any{"name": "Again"})
			alice.Send(room, "t3", "skipped too")
			res = sliding(t, alice, pos, 0, body)
			if n := res.Get("rooms." + gkey(room) + ".name").String(); n != "Again" {
				t.Errorf("under timeline_limit 0, a rename = %s, want the room with its new name", res.Get("rooms").Raw)
			}
			r = sliding(t, alice, res.Get("pos").String(), 0, one).Get("rooms." + gkey(room))
			if got := r.Get("timeline.0.content.body").String(); got != "skipped too" {
				t.Errorf("after the limit grows again = %s, want the skipped message", r.Raw)
			}
		})
	}
}
