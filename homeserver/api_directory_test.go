package homeserver_test

import (
	"slices"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// apiPublicRoom finds a room in a publicRooms chunk.
func apiPublicRoom(res gjson.Result, roomID string) gjson.Result {
	for _, r := range res.Get("chunk").Array() {
		if r.Get("room_id").String() == roomID {
			return r
		}
	}
	return gjson.Result{}
}

func apiRoomIDs(res gjson.Result) []string {
	var out []string
	for _, r := range res.Get("chunk").Array() {
		out = append(out, r.Get("room_id").String())
	}
	slices.Sort(out)
	return out
}

// TestRoomDirectory: aliases can be added, resolved, refused when taken and
// removed; a published room is listed with its name, topic, alias and
// member count, and the search term filters the list.
func TestRoomDirectory(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			anon := srv.Anon(t)
			room := alice.CreateRoom(map[string]any{"name": "Cake Club", "topic": "All about baking", "room_alias_name": "cake", "invite": []string{bob.UserID}})
			bob.Join(room)
			tea := alice.CreateRoom(map[string]any{"name": "Tea Room", "topic": "Loose leaves"})
			aliasPath := func(alias string) string { return "/_matrix/client/v3/directory/room/" + hstest.Esc(alias) }

			// Aliases.
			alice.MustDo("PUT", aliasPath("#cakes:localhost"), map[string]any{"room_id": room})
			for _, alias := range []string{"#cake:localhost", "#cakes:localhost"} {
				res := anon.MustDo("GET", aliasPath(alias), nil)
				if res.Get("room_id").String() != room || !slices.Contains(apiStrings(res.Get("servers")), "localhost") {
					t.Errorf("GET %s = %s, want room %s on localhost", alias, res.Raw, room)
				}
			}
			taken := []struct {
				who   *hstest.Client
				alias string
				body  map[string]any
			}{
				{bob, "#cakes:localhost", map[string]any{"room_id": room}},
				{alice, "#cake:localhost", map[string]any{"room_id": tea}},
			}
			for _, c := range taken {
				if st, res := c.who.Do("PUT", aliasPath(c.alias), c.body); st != 409 {
					t.Errorf("%s PUT taken %s = %d %s, want 409", c.who.UserID, c.alias, st, res.Raw)
				}
			}
			aliases := apiStrings(alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/aliases", nil).Get("aliases"))
			slices.Sort(aliases)
			if want := []string{"#cake:localhost", "#cakes:localhost"}; !slices.Equal(aliases, want) {
				t.Errorf("room aliases = %v, want %v", aliases, want)
			}
			if st, res := bob.Do("DELETE", aliasPath("#cakes:localhost"), nil); st != 403 {
				t.Errorf("DELETE by a member who neither made the alias nor may change it = %d %s, want 403", st, res.Raw)
			}
			alice.MustDo("DELETE", aliasPath("#cakes:localhost"), nil)
			for _, method := range []string{"GET", "DELETE"} {
				if st, res := alice.Do(method, aliasPath("#cakes:localhost"), nil); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
					t.Errorf("%s deleted alias = %d %s, want 404 M_NOT_FOUND", method, st, res.Raw)
				}
			}

			// Visibility: private by default, only a member with power may publish.
			visPath := "/_matrix/client/v3/directory/list/room/" + hstest.Esc(room)
			if got := anon.MustDo("GET", visPath, nil).Get("visibility").String(); got != "private" {
				t.Errorf("default visibility = %q, want private", got)
			}
			if st, res := bob.Do("PUT", visPath, map[string]any{"visibility": "public"}); st != 403 {
				t.Errorf("unprivileged publish = %d %s, want 403", st, res.Raw)
			}
			alice.MustDo("PUT", visPath, map[string]any{"visibility": "public"})
			alice.MustDo("PUT", "/_matrix/client/v3/directory/list/room/"+hstest.Esc(tea), map[string]any{"visibility": "public"})
			if got := anon.MustDo("GET", visPath, nil).Get("visibility").String(); got != "public" {
				t.Errorf("visibility after publishing = %q, want public", got)
			}

			list := anon.MustDo("GET", "/_matrix/client/v3/publicRooms", nil)
			entry := apiPublicRoom(list, room)
			for field, want := range map[string]string{"name": "Cake Club", "topic": "All about baking", "canonical_alias": "#cake:localhost"} {
				if got := entry.Get(field).String(); got != want {
					t.Errorf("publicRooms entry %s = %q, want %q (%s)", field, got, want, list.Raw)
				}
			}
			if got := entry.Get("num_joined_members").Int(); got != 2 {
				t.Errorf("publicRooms entry num_joined_members = %d, want 2", got)
			}
			if got, want := apiRoomIDs(list), apiSorted(room, tea); !slices.Equal(got, want) {
				t.Errorf("publicRooms = %v, want %v", got, want)
			}
			if got := list.Get("total_room_count_estimate").Int(); got != 2 {
				t.Errorf("total_room_count_estimate = %d, want 2", got)
			}

			searches := []struct {
				term string
				want []string
			}{
				{"CAKE", []string{room}},   // name, case-insensitively
				{"baking", []string{room}}, // topic
				{"#cake:", []string{room}}, // canonical alias
				{"leaves", []string{tea}},
				{"room", []string{tea}}, // "Tea Room"
				{"pizza", nil},
			}
			for _, c := range searches {
				res := bob.MustDo("POST", "/_matrix/client/v3/publicRooms", map[string]any{"filter": map[string]any{"generic_search_term": c.term}})
				if got := apiRoomIDs(res); !slices.Equal(got, c.want) {
					t.Errorf("publicRooms search %q = %v, want %v", c.term, got, c.want)
				}
			}
			page := bob.MustDo("POST", "/_matrix/client/v3/publicRooms", map[string]any{"limit": 1})
			next := page.Get("next_batch").String()
			rest := bob.MustDo("POST", "/_matrix/client/v3/publicRooms", map[string]any{"limit": 1, "since": next})
			if got := append(apiRoomIDs(page), apiRoomIDs(rest)...); next == "" || !slices.Equal(apiSorted(got...), apiSorted(room, tea)) {
				t.Errorf("two pages of one = %v (next_batch %q), want both rooms once", got, next)
			}

			alice.MustDo("PUT", visPath, map[string]any{"visibility": "private"})
			if got := apiRoomIDs(anon.MustDo("GET", "/_matrix/client/v3/publicRooms", nil)); !slices.Equal(got, []string{tea}) {
				t.Errorf("publicRooms after unpublishing = %v, want [%s]", got, tea)
			}
		})
	}
}

func apiSorted(s ...string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestUserDirectorySearch: users are found by display name and by
// localpart, case-insensitively, and limited says whether more matched.
func TestUserDirectorySearch(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			srv.Register(t, "zed1")
			srv.Register(t, "zed2")
			bob := srv.Register(t, "bob")
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID)+"/displayname", map[string]any{"displayname": "Wonderland Queen"})
			cases := []struct {
				term        string
				limit       int
				want        []string
				wantLimited bool
			}{
				{"wonderland", 0, []string{"@alice:localhost"}, false},
				{"QUEEN", 0, []string{"@alice:localhost"}, false},
				{"alice", 0, []string{"@alice:localhost"}, false},
				{"zed", 10, []string{"@zed1:localhost", "@zed2:localhost"}, false},
				{"zed", 1, nil, true}, // one of the two
				{"nobody-like-this", 0, nil, false},
			}
			for _, c := range cases {
				body := map[string]any{"search_term": c.term}
				if c.limit > 0 {
					body["limit"] = c.limit
				}
				res := bob.MustDo("POST", "/_matrix/client/v3/user_directory/search", body)
				var got []string
				for _, r := range res.Get("results").Array() {
					got = append(got, r.Get("user_id").String())
				}
				slices.Sort(got)
				if c.wantLimited {
					if len(got) != c.limit || !res.Get("limited").Bool() {
						t.Errorf("search %q limit %d = %v limited %v, want %d result(s), limited", c.term, c.limit, got, res.Get("limited").Bool(), c.limit)
					}
					continue
				}
				if !slices.Equal(got, c.want) || res.Get("limited").Bool() {
					t.Errorf("search %q = %v limited %v, want %v, not limited", c.term, got, res.Get("limited").Bool(), c.want)
				}
			}
			res := bob.MustDo("POST", "/_matrix/client/v3/user_directory/search", map[string]any{"search_term": "wonder"})
			if got := res.Get("results.0.display_name").String(); got != "Wonderland Queen" {
				t.Errorf("result display_name = %q, want Wonderland Queen", got)
			}
		})
	}
}

// TestPushRules: the default ruleset's shape, a user rule's whole life
// (add, read, disable, change actions, delete), the defaults' protection,
// and every change reaching the user's other device as m.push_rules.
func TestPushRules(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice1 := srv.Register(t, "alice")
			alice2 := srv.Login(t, "alice")
			const base = "/_matrix/client/v3/pushrules/global/"
			rules := alice1.MustDo("GET", "/_matrix/client/v3/pushrules/", nil)
			for _, kind := range []string{"override", "content", "room", "sender", "underride"} {
				if !rules.Get("global." + kind).IsArray() {
					t.Errorf("pushrules global.%s = %s, want an array", kind, rules.Get("global."+kind).Raw)
				}
			}
			if got := rules.Get("global.override.0.rule_id").String(); got != ".m.rule.master" {
				t.Errorf("first override rule = %q, want .m.rule.master", got)
			}
			initial := alice2.Sync("", 0)
			since := initial.Get("next_batch").String()
			if pr := apiGlobalData(initial, "m.push_rules"); !pr.Get("global.override").IsArray() {
				t.Errorf("initial sync m.push_rules = %s, want the ruleset", pr.Raw)
			}
			// otherDevice returns the override rule IDs alice2 next sees in m.push_rules.
			otherDevice := func() []string {
				t.Helper()
				s := alice2.Sync(since, 0)
				since = s.Get("next_batch").String()
				pr := apiGlobalData(s, "m.push_rules")
				if !pr.Exists() {
					t.Errorf("alice2's sync carries no m.push_rules after a change: %s", s.Get("account_data").Raw)
				}
				var ids []string
				for _, r := range pr.Get("global.override").Array() {
					ids = append(ids, r.Get("rule_id").String())
				}
				return ids
			}

			rule := map[string]any{
				"conditions": []any{map[string]any{"kind": "event_match", "key": "content.body", "pattern": "cake"}},
				"actions":    []any{"notify"},
			}
			alice1.MustDo("PUT", base+"override/cake", rule)
			got := alice1.MustDo("GET", base+"override/cake", nil)
			if got.Get("rule_id").String() != "cake" || !got.Get("enabled").Bool() || got.Get("default").Bool() ||
				got.Get("conditions.0.pattern").String() != "cake" || got.Get("actions").Raw != `["notify"]` {
				t.Errorf("GET rule = %s, want the enabled user rule as PUT", got.Raw)
			}
			override := apiStrings(alice1.MustDo("GET", "/_matrix/client/v3/pushrules/", nil).Get("global.override.#.rule_id"))
			if len(override) < 2 || override[0] != ".m.rule.master" || override[1] != "cake" {
				t.Errorf("override order = %v, want .m.rule.master then the user's cake rule", override)
			}
			if ids := otherDevice(); !slices.Contains(ids, "cake") {
				t.Errorf("alice2's m.push_rules override = %v, want cake", ids)
			}

			alice1.MustDo("PUT", base+"override/cake/enabled", map[string]any{"enabled": false})
			if alice1.MustDo("GET", base+"override/cake/enabled", nil).Get("enabled").Bool() {
				t.Errorf("enabled after disabling = true, want false")
			}
			actions := `["notify",{"set_tweak":"sound","value":"default"}]`
			alice1.MustDo("PUT", base+"override/cake/actions", []byte(`{"actions":`+actions+`}`))
			if got := alice1.MustDo("GET", base+"override/cake/actions", nil).Get("actions").Raw; got != actions {
				t.Errorf("actions = %s, want %s", got, actions)
			}
			if got := alice1.MustDo("GET", base+"override/cake", nil); got.Get("enabled").Bool() || got.Get("actions").Raw != actions {
				t.Errorf("rule after changes = %s, want disabled with the new actions", got.Raw)
			}

			alice1.MustDo("DELETE", base+"override/cake", nil)
			if st, res := alice1.Do("GET", base+"override/cake", nil); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("GET deleted rule = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
			if ids := otherDevice(); slices.Contains(ids, "cake") {
				t.Errorf("alice2's m.push_rules override after delete = %v, want no cake", ids)
			}
			if st, res := alice1.Do("DELETE", base+"override/.m.rule.master", nil); st < 400 || st >= 500 {
				t.Errorf("DELETE default rule = %d %s, want a 4xx refusal", st, res.Raw)
			}
			if st, _ := alice1.Do("GET", base+"override/.m.rule.master", nil); st != 200 {
				t.Errorf("default rule after refused delete = %d, want still there", st)
			}
		})
	}
}

// apiGlobalData returns the content of a global account-data event in a sync.
func apiGlobalData(sync gjson.Result, typ string) gjson.Result {
	for _, e := range sync.Get("account_data.events").Array() {
		if e.Get("type").String() == typ {
			return e.Get("content")
		}
	}
	return gjson.Result{}
}
