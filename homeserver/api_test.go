package homeserver_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// Black-box tests of the client API's smaller endpoints: account data and
// tags, filters, presence on sync, room reads, forget, and discovery.

// apiRoomData returns the content of a room account-data event in a sync.
func apiRoomData(sync gjson.Result, roomID, typ string) gjson.Result {
	for _, e := range hstest.Room(sync, "join", roomID).Get("account_data.events").Array() {
		if e.Get("type").String() == typ {
			return e.Get("content")
		}
	}
	return gjson.Result{}
}

// TestAccountData: global and per-room account data round-trip, are private
// to their owner, reach the owner's other device through sync, and the
// server-controlled types cannot be written directly.
func TestAccountData(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice1 := srv.Register(t, "alice")
			alice2 := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice1.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := alice2.Sync("", 0).Get("next_batch").String()
			global := "/_matrix/client/v3/user/" + hstest.Esc(alice1.UserID) + "/account_data/"
			perRoom := "/_matrix/client/v3/user/" + hstest.Esc(alice1.UserID) + "/rooms/" + hstest.Esc(room) + "/account_data/"

			alice1.MustDo("PUT", global+"org.example.settings", map[string]any{"theme": "dark"})
			alice1.MustDo("PUT", perRoom+"org.example.pinned", map[string]any{"pinned": true})
			if got := alice1.MustDo("GET", global+"org.example.settings", nil).Raw; got != `{"theme":"dark"}` {
				t.Errorf("GET global account data = %s, want {\"theme\":\"dark\"}", got)
			}
			if got := alice1.MustDo("GET", perRoom+"org.example.pinned", nil).Raw; got != `{"pinned":true}` {
				t.Errorf("GET room account data = %s, want {\"pinned\":true}", got)
			}

			refused := []struct {
				name    string
				who     *hstest.Client
				method  string
				path    string
				status  int
				errcode string
			}{
				{"unknown global type", alice1, "GET", global + "org.example.none", 404, "M_NOT_FOUND"},
				{"unknown room type", alice1, "GET", perRoom + "org.example.none", 404, "M_NOT_FOUND"},
				{"global type asked per room", alice1, "GET", perRoom + "org.example.settings", 404, "M_NOT_FOUND"},
				{"another user's global data", bob, "GET", global + "org.example.settings", 403, "M_FORBIDDEN"},
				{"another user's room data", bob, "GET", perRoom + "org.example.pinned", 403, "M_FORBIDDEN"},
				{"writing another user's data", bob, "PUT", global + "org.example.settings", 403, "M_FORBIDDEN"},
				{"m.fully_read through account data", alice1, "PUT", perRoom + "m.fully_read", 405, "M_BAD_JSON"},
				{"m.push_rules through account data", alice1, "PUT", global + "m.push_rules", 405, "M_BAD_JSON"},
			}
			for _, c := range refused {
				var body any
				if c.method == "PUT" {
					body = map[string]any{"event_id": "$x"}
				}
				if st, res := c.who.Do(c.method, c.path, body); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: %s = %d %s, want %d %s", c.name, c.method, st, res.Raw, c.status, c.errcode)
				}
			}

			s := alice2.Sync(since, 0)
			if got := apiGlobalData(s, "org.example.settings").Get("theme").String(); got != "dark" {
				t.Errorf("alice2's sync global account data = %s, want theme dark", s.Get("account_data").Raw)
			}
			if !apiRoomData(s, room, "org.example.pinned").Get("pinned").Bool() {
				t.Errorf("alice2's sync room account data = %s, want pinned", hstest.Room(s, "join", room).Get("account_data").Raw)
			}
			if s := bob.Sync("", 0); apiGlobalData(s, "org.example.settings").Exists() || apiRoomData(s, room, "org.example.pinned").Exists() {
				t.Errorf("bob's sync carries alice's account data")
			}
		})
	}
}

// TestRoomTags: tags with an order are set, listed, synced as m.tag, and removed.
func TestRoomTags(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{})
	tags := "/_matrix/client/v3/user/" + hstest.Esc(alice.UserID) + "/rooms/" + hstest.Esc(room) + "/tags"
	alice.MustDo("PUT", tags+"/u.work", map[string]any{"order": 0.25})
	alice.MustDo("PUT", tags+"/m.favourite", map[string]any{})
	got := alice.MustDo("GET", tags, nil)
	if got.Get(apiPath("tags", "u.work", "order")).Float() != 0.25 || !got.Get(apiPath("tags", "m.favourite")).IsObject() {
		t.Errorf("tags = %s, want u.work with order 0.25 and m.favourite", got.Raw)
	}
	if synced := apiRoomData(alice.Sync("", 0), room, "m.tag"); synced.Get(apiPath("tags", "u.work", "order")).Float() != 0.25 {
		t.Errorf("synced m.tag = %s, want u.work with order 0.25", synced.Raw)
	}
	alice.MustDo("DELETE", tags+"/u.work", nil)
	if got := alice.MustDo("GET", tags, nil).Get("tags").Raw; got != `{"m.favourite":{}}` {
		t.Errorf("tags after delete = %s, want only m.favourite", got)
	}
	if st, _ := bob.Do("GET", tags, nil); st != 403 {
		t.Errorf("another user's tags = %d, want 403", st)
	}
}

// TestStoredFilter: a stored filter reads back, and its ID applies it to
// /sync: a timeline limit of 1 after 3 messages gives one event, limited.
func TestStoredFilter(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			path := "/_matrix/client/v3/user/" + hstest.Esc(alice.UserID) + "/filter"
			id := alice.MustDo("POST", path, map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 1}}}).Get("filter_id").String()
			if id == "" {
				t.Fatal("no filter_id")
			}
			if got := alice.MustDo("GET", path+"/"+url.PathEscape(id), nil).Get("room.timeline.limit").Int(); got != 1 {
				t.Errorf("stored filter timeline limit = %d, want 1", got)
			}
			if st, res := alice.Do("GET", path+"/no-such-filter", nil); st != 404 {
				t.Errorf("unknown filter = %d %s, want 404", st, res.Raw)
			}
			room := alice.CreateRoom(map[string]any{})
			since := alice.Sync("", 0).Get("next_batch").String()
			for _, body := range []string{"one", "two", "three"} {
				alice.Send(room, body, body)
			}
			s := alice.MustDo("GET", "/_matrix/client/v3/sync?filter="+url.QueryEscape(id)+"&since="+url.QueryEscape(since), nil)
			if got := hstest.Bodies(s, room); !slices.Equal(got, []string{"three"}) {
				t.Errorf("filtered timeline = %v, want [three]", got)
			}
			if !hstest.Room(s, "join", room).Get("timeline.limited").Bool() {
				t.Errorf("limited = false, want true")
			}
		})
	}
}

// TestSyncSetPresenceOffline: syncing with set_presence=offline does not
// mark the user online; a plain sync does.
func TestSyncSetPresenceOffline(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	status := "/_matrix/client/v3/presence/" + hstest.Esc(alice.UserID) + "/status"
	s := alice.MustDo("GET", "/_matrix/client/v3/sync?set_presence=offline&timeout=0", nil)
	alice.MustDo("GET", "/_matrix/client/v3/sync?set_presence=offline&timeout=0&since="+url.QueryEscape(s.Get("next_batch").String()), nil)
	if p := bob.MustDo("GET", status, nil); p.Get("presence").String() != "offline" || p.Get("currently_active").Bool() {
		t.Errorf("presence after offline syncs = %s, want offline, not currently active", p.Raw)
	}
	alice.Sync("", 0)
	if got := bob.MustDo("GET", status, nil).Get("presence").String(); got != "online" {
		t.Errorf("presence after a plain sync = %q, want online", got)
	}
}

// TestJoinedRooms lists joined rooms only.
func TestJoinedRooms(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	r1 := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	r2 := alice.CreateRoom(map[string]any{})
	r3 := alice.CreateRoom(map[string]any{})
	alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(r2)+"/leave", map[string]any{})
	if got := apiStrings(alice.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms")); !slices.Equal(apiSorted(got...), apiSorted(r1, r3)) {
		t.Errorf("alice joined_rooms = %v, want %v", got, apiSorted(r1, r3))
	}
	res := bob.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil) // invited only
	if !res.Get("joined_rooms").IsArray() || len(res.Get("joined_rooms").Array()) != 0 {
		t.Errorf("bob joined_rooms = %s, want []", res.Raw)
	}
}

// TestRoomStateAccess: members read the state and single state events;
// a user who was never in the room gets 403.
func TestRoomStateAccess(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"name": "State Room", "invite": []string{bob.UserID}})
			bob.Join(room)
			base := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/state"
			cases := []struct {
				who    *hstest.Client
				path   string
				status int
				check  func(gjson.Result) bool
			}{
				{alice, "", 200, func(r gjson.Result) bool {
					return slices.Contains(apiStrings(r.Get("#.type")), "m.room.create") && slices.Contains(apiStrings(r.Get("#.type")), "m.room.name")
				}},
				{alice, "/m.room.name", 200, func(r gjson.Result) bool { return r.Get("name").String() == "State Room" }},
				{alice, "/m.room.name/", 200, func(r gjson.Result) bool { return r.Get("name").String() == "State Room" }},
				{bob, "/m.room.member/" + hstest.Esc(bob.UserID), 200, func(r gjson.Result) bool { return r.Get("membership").String() == "join" }},
				{bob, "/m.room.name?format=event", 200, func(r gjson.Result) bool {
					return r.Get("content.name").String() == "State Room" && r.Get("sender").String() == alice.UserID
				}},
				{alice, "/m.room.avatar", 404, func(r gjson.Result) bool { return r.Get("errcode").String() == "M_NOT_FOUND" }},
				{carol, "", 403, func(r gjson.Result) bool { return r.Get("errcode").String() == "M_FORBIDDEN" }},
				{carol, "/m.room.name", 403, func(r gjson.Result) bool { return r.Get("errcode").String() == "M_FORBIDDEN" }},
			}
			for _, c := range cases {
				st, res := c.who.Do("GET", base+c.path, nil)
				if st != c.status || !c.check(res) {
					t.Errorf("%s GET state%s = %d %s, want %d", c.who.UserID, c.path, st, res.Raw, c.status)
				}
			}
		})
	}
}

// TestEventContext returns the event with those before (newest first) and
// after (oldest first), within the limit, and tokens that page on from them.
func TestEventContext(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	carol := srv.Register(t, "carol")
	room := alice.CreateRoom(map[string]any{})
	var evIDs []string
	for _, body := range []string{"m1", "m2", "m3", "m4", "m5"} {
		evIDs = append(evIDs, alice.Send(room, body, body))
	}
	path := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/context/" + hstest.Esc(evIDs[2])
	res := alice.MustDo("GET", path+"?limit=4", nil)
	if got := res.Get("event.event_id").String(); got != evIDs[2] {
		t.Errorf("event = %s, want %s", got, evIDs[2])
	}
	if got := apiStrings(res.Get("events_before.#.content.body")); !slices.Equal(got, []string{"m2", "m1"}) {
		t.Errorf("events_before = %v, want [m2 m1]", got)
	}
	if got := apiStrings(res.Get("events_after.#.content.body")); !slices.Equal(got, []string{"m4", "m5"}) {
		t.Errorf("events_after = %v, want [m4 m5]", got)
	}
	if !slices.Contains(apiStrings(res.Get("state.#.type")), "m.room.create") {
		t.Errorf("context state lacks m.room.create: %s", res.Get("state").Raw)
	}
	messages := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/messages"
	after := alice.MustDo("GET", messages+"?dir=f&from="+url.QueryEscape(res.Get("end").String()), nil)
	if n := len(after.Get("chunk").Array()); n != 0 {
		t.Errorf("paging forwards from end = %d events, want none after m5", n)
	}
	before := alice.MustDo("GET", messages+"?dir=b&limit=1&from="+url.QueryEscape(res.Get("start").String()), nil)
	if got := before.Get("chunk.0.event_id").String(); got == "" || slices.Contains(evIDs, got) {
		t.Errorf("paging backwards from start = %s, want the event before m1", before.Get("chunk").Raw)
	}
	// An event one may not read answers like a missing one (see the
	// authorization matrix).
	if st, _ := carol.Do("GET", path, nil); st != 404 {
		t.Errorf("context for a non-member = %d, want 404", st)
	}
}

// TestMembersFilter: /members filters by membership and not_membership.
func TestMembersFilter(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	dave := srv.Register(t, "dave")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat", "invite": []string{carol.UserID}})
	bob.Join(room)
	dave.Join(room)
	dave.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
	cases := []struct {
		query string
		want  []string
	}{
		{"membership=join", apiSorted(alice.UserID, bob.UserID)},
		{"membership=invite", []string{carol.UserID}},
		{"membership=leave", []string{dave.UserID}},
		{"not_membership=join", apiSorted(carol.UserID, dave.UserID)},
		{"", apiSorted(alice.UserID, bob.UserID, carol.UserID, dave.UserID)},
	}
	for _, c := range cases {
		res := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/members?"+c.query, nil)
		if got := apiSorted(apiStrings(res.Get("chunk.#.state_key"))...); !slices.Equal(got, c.want) {
			t.Errorf("members?%s = %v, want %v", c.query, got, c.want)
		}
	}
}

// TestForgetHidesLeftRoom: a left room shows in an initial sync's leave
// section with include_leave until the user forgets it.
func TestForgetHidesLeftRoom(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			forget := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/forget"
			if st, res := bob.Do("POST", forget, map[string]any{}); st != 400 {
				t.Errorf("forget while joined = %d %s, want 400", st, res.Raw)
			}
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			withLeave := "/_matrix/client/v3/sync?filter=" + url.QueryEscape(`{"room":{"include_leave":true}}`)
			if !hstest.Room(bob.MustDo("GET", withLeave, nil), "leave", room).Exists() {
				t.Errorf("left room missing from include_leave initial sync before forgetting")
			}
			if hstest.Room(bob.Sync("", 0), "leave", room).Exists() {
				t.Errorf("left room in an initial sync without include_leave")
			}
			bob.MustDo("POST", forget, map[string]any{})
			if s := bob.MustDo("GET", withLeave, nil); hstest.Room(s, "leave", room).Exists() {
				t.Errorf("forgotten room still in the leave section: %s", s.Get("rooms.leave").Raw)
			}
		})
	}
}

// TestDiscovery: /versions, /.well-known/matrix/client and /capabilities.
func TestDiscovery(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	anon := srv.Anon(t)
	alice := srv.Register(t, "alice")
	if got := apiStrings(anon.MustDo("GET", "/_matrix/client/versions", nil).Get("versions")); !slices.Contains(got, "v1.11") {
		t.Errorf("versions = %v, want v1.11 among them", got)
	}
	if got := anon.MustDo("GET", "/.well-known/matrix/client", nil).Get(apiPath("m.homeserver", "base_url")).String(); got != srv.URL {
		t.Errorf("well-known base_url = %q, want %q", got, srv.URL)
	}
	caps := alice.MustDo("GET", "/_matrix/client/v3/capabilities", nil).Get("capabilities")
	def := caps.Get(apiPath("m.room_versions", "default")).String()
	if def == "" || caps.Get(apiPath("m.room_versions", "available", def)).String() != "stable" {
		t.Errorf("m.room_versions = %s, want a default that is available and stable", caps.Get(apiPath("m.room_versions")).Raw)
	}
	for _, c := range []string{"m.change_password", "m.set_displayname", "m.set_avatar_url", "m.3pid_changes"} {
		if v := caps.Get(apiPath(c, "enabled")); !v.IsBool() {
			t.Errorf("capability %s.enabled = %s, want a boolean", c, v.Raw)
		}
	}
	if st, _ := anon.Do("GET", "/_matrix/client/v3/capabilities", nil); st != 401 {
		t.Errorf("capabilities without a token = %d, want 401", st)
	}
}
