package homeserver_test

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

const rel = "/_parley/client/v1"

// device is one logged-in device that keeps its own sync position, as a
// real client does.
type device struct {
	*hstest.Client
	since string
}

func newDevice(c *hstest.Client) *device {
	d := &device{Client: c}
	d.since = c.Sync("", 0).Get("next_batch").String()
	return d
}

// notices syncs incrementally and returns the relationship notices as
// "type key=value..." strings.
func (d *device) notices() []string {
	res := d.Sync(d.since, 0)
	d.since = res.Get("next_batch").String()
	var out []string
	for _, n := range res.Get(`io\.parley\.relationships.events`).Array() {
		out = append(out, noticeString(n))
	}
	return out
}

func noticeString(n gjson.Result) string {
	c := n.Get("content")
	switch n.Get("type").String() {
	case "io.parley.friend_request":
		return fmt.Sprintf("request %s %s->%s", c.Get("state"), short(c.Get("from").String()), short(c.Get("to").String()))
	case "io.parley.friendship":
		return fmt.Sprintf("friendship %s %v", short(c.Get("user_id").String()), c.Get("friends").Bool())
	case "io.parley.follow":
		return fmt.Sprintf("follow %s->%s %v", short(c.Get("follower").String()), short(c.Get("followee").String()), c.Get("following").Bool())
	case "io.parley.block":
		return fmt.Sprintf("block %s %v", short(c.Get("user_id").String()), c.Get("blocked").Bool())
	}
	return n.Raw
}

// short turns @alice:server into alice.
func short(userID string) string {
	s := strings.TrimPrefix(userID, "@")
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:i]
	}
	return s
}

func expectNotices(t *testing.T, who string, d *device, want ...string) {
	t.Helper()
	if got := d.notices(); !slices.Equal(got, want) {
		t.Errorf("%s's device %s: notices %q, want %q", who, d.DeviceID, got, want)
	}
}

func TestFriendshipReachesEveryDevice(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			a1 := newDevice(srv.Register(t, "alice"))
			a2 := newDevice(srv.Login(t, "alice"))
			b1 := newDevice(srv.Register(t, "bob"))
			b2 := newDevice(srv.Login(t, "bob"))
			alice, bob := a1.UserID, b1.UserID

			res := a1.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": bob, "message": "hi, it's alice"})
			id := res.Get("request_id").String()
			if id == "" || res.Get("state").String() != "pending" {
				t.Fatalf("request = %s", res.Raw)
			}
			for _, d := range []*device{a1, a2, b1, b2} {
				expectNotices(t, short(d.UserID), d, "request pending alice->bob")
			}
			in := b2.MustDo("GET", rel+"/friend_requests?dir=in", nil)
			if in.Get("chunk.#").Int() != 1 || in.Get("chunk.0.request_id").String() != id || in.Get("chunk.0.message").String() != "hi, it's alice" {
				t.Fatalf("incoming = %s", in.Raw)
			}
			if out := a2.MustDo("GET", rel+"/friend_requests?dir=out", nil); out.Get("chunk.0.request_id").String() != id {
				t.Fatalf("outgoing = %s", out.Raw)
			}

			b2.MustDo("POST", rel+"/friend_requests/"+hstest.Esc(id)+"/accept", map[string]any{})
			expectNotices(t, "alice", a1, "request accepted alice->bob", "friendship bob true")
			expectNotices(t, "alice", a2, "request accepted alice->bob", "friendship bob true")
			expectNotices(t, "bob", b1, "request accepted alice->bob", "friendship alice true")
			expectNotices(t, "bob", b2, "request accepted alice->bob", "friendship alice true")

			r := a1.MustDo("GET", rel+"/relationship/"+hstest.Esc(bob), nil)
			if !r.Get("friends").Bool() || r.Get("request_out").Type != gjson.Null || r.Get("blocked").Bool() {
				t.Errorf("relationship = %s", r.Raw)
			}
			if f := b1.MustDo("GET", rel+"/friends", nil); f.Get("chunk.0.user_id").String() != alice || f.Get("chunk.#").Int() != 1 {
				t.Errorf("bob's friends = %s", f.Raw)
			}

			a2.MustDo("DELETE", rel+"/friends/"+hstest.Esc(bob), nil)
			expectNotices(t, "alice", a1, "friendship bob false")
			expectNotices(t, "bob", b2, "friendship alice false")
			if f := b1.MustDo("GET", rel+"/friends", nil); f.Get("chunk.#").Int() != 0 {
				t.Errorf("bob's friends after unfriend = %s", f.Raw)
			}

			// A new follower is news for the followed user's devices.
			b1.MustDo("PUT", rel+"/follows/"+hstest.Esc(alice), map[string]any{})
			expectNotices(t, "alice", a2, "friendship bob false", "follow bob->alice true")
			expectNotices(t, "bob", b1, "friendship alice false", "follow bob->alice true")
			b1.MustDo("PUT", rel+"/follows/"+hstest.Esc(alice), map[string]any{}) // a repeat is no news
			expectNotices(t, "alice", a2)
		})
	}
}

func TestFriendRequestRules(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			a, b, c := srv.Register(t, "ann"), srv.Register(t, "ben"), srv.Register(t, "cat")

			// Crossing requests make friends.
			first := a.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": b.UserID})
			again := a.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": b.UserID})
			if again.Get("request_id").String() != first.Get("request_id").String() {
				t.Errorf("a repeated request made a new one: %s then %s", first.Raw, again.Raw)
			}
			cross := b.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": a.UserID})
			if cross.Get("state").String() != "friends" {
				t.Errorf("crossing request = %s, want state friends", cross.Raw)
			}
			if !a.MustDo("GET", rel+"/relationship/"+hstest.Esc(b.UserID), nil).Get("friends").Bool() {
				t.Error("crossing requests did not make friends")
			}
			// Requesting a friend is a no-op.
			if res := a.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": b.UserID}); res.Get("state").String() != "friends" {
				t.Errorf("request to a friend = %s", res.Raw)
			}
			if in := b.MustDo("GET", rel+"/friend_requests?dir=in", nil); in.Get("chunk.#").Int() != 0 {
				t.Errorf("pending after becoming friends: %s", in.Raw)
			}

			// Only the recipient may accept; only the sender may cancel.
			id := c.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": a.UserID}).Get("request_id").String()
			for _, tc := range []struct {
				who    *hstest.Client
				action string
				status int
			}{
				{c, "accept", 404}, {b, "accept", 404}, {a, "cancel", 404}, {a, "frobnicate", 404},
				{a, "decline", 200}, {a, "accept", 404}, // no longer pending
			} {
				if st, res := tc.who.Do("POST", rel+"/friend_requests/"+hstest.Esc(id)+"/"+tc.action, map[string]any{}); st != tc.status {
					t.Errorf("%s %s = %d %s, want %d", short(tc.who.UserID), tc.action, st, res.Raw, tc.status)
				}
			}

			expectErrors(t, []errorCase{
				{"self request", a, "POST", rel + "/friend_requests", map[string]any{"user_id": a.UserID}, 400, "M_INVALID_PARAM"},
				{"unknown user", a, "POST", rel + "/friend_requests", map[string]any{"user_id": "@nobody:" + srv.Cfg.ServerName}, 404, "M_NOT_FOUND"},
				{"no user", a, "POST", rel + "/friend_requests", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"not JSON", a, "POST", rel + "/friend_requests", []byte("{"), 400, "M_NOT_JSON"},
				{"bad dir", a, "GET", rel + "/friend_requests?dir=sideways", nil, 400, "M_INVALID_PARAM"},
				{"bad limit", a, "GET", rel + "/friends?limit=0", nil, 400, "M_INVALID_PARAM"},
				{"bad from", a, "GET", rel + "/friends?from=garbage", nil, 400, "M_INVALID_PARAM"},
				{"self follow", a, "PUT", rel + "/follows/" + hstest.Esc(a.UserID), map[string]any{}, 400, "M_INVALID_PARAM"},
				{"bad policy", a, "PUT", rel + "/privacy", map[string]any{"dm_policy": "nobody"}, 400, "M_INVALID_PARAM"},
			})
			if st, _ := srv.Anon(t).Do("GET", rel+"/friends", nil); st != 401 {
				t.Errorf("friends without a token = %d, want 401", st)
			}
		})
	}
}

func TestBlockIsEnforced(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			bob := srv.Register(t, "bob")
			mallory := srv.Register(t, "mallory")
			bobDev := newDevice(bob)
			mallory.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": bob.UserID})
			bob.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": mallory.UserID}) // friends now
			bob.MustDo("PUT", rel+"/follows/"+hstest.Esc(mallory.UserID), map[string]any{})
			mallory.MustDo("PUT", rel+"/follows/"+hstest.Esc(bob.UserID), map[string]any{})
			room := mallory.CreateRoom(map[string]any{"name": "lair"})
			bobDev.notices()

			bob.MustDo("PUT", rel+"/blocks/"+hstest.Esc(mallory.UserID), map[string]any{})
			expectNotices(t, "bob", bobDev, "block mallory true")
			r := bob.MustDo("GET", rel+"/relationship/"+hstest.Esc(mallory.UserID), nil)
			if r.Get("friends").Bool() || r.Get("following").Bool() || r.Get("followed_by").Bool() || !r.Get("blocked").Bool() {
				t.Errorf("after block: %s", r.Raw)
			}
			if m := mallory.MustDo("GET", rel+"/relationship/"+hstest.Esc(bob.UserID), nil); !m.Get("blocked_by").Bool() {
				t.Errorf("mallory's view: %s", m.Raw)
			}

			refused := []struct {
				name, method, path string
				body               any
			}{
				{"request", "POST", rel + "/friend_requests", map[string]any{"user_id": bob.UserID}},
				{"follow", "PUT", rel + "/follows/" + hstest.Esc(bob.UserID), map[string]any{}},
				{"invite", "POST", "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/invite", map[string]any{"user_id": bob.UserID}},
				{"DM", "POST", "/_matrix/client/v3/createRoom", map[string]any{"is_direct": true, "invite": []string{bob.UserID}, "preset": "trusted_private_chat"}},
				{"followers list", "GET", rel + "/users/" + hstest.Esc(bob.UserID) + "/followers", nil},
			}
			for _, c := range refused {
				st, res := mallory.Do(c.method, c.path, c.body)
				if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" || res.Get("error").String() == "" {
					t.Errorf("%s by a blocked user = %d %s, want 403 M_FORBIDDEN with a message", c.name, st, res.Raw)
				}
			}
			if b := bob.MustDo("GET", rel+"/blocks", nil); b.Get("chunk.0.user_id").String() != mallory.UserID {
				t.Errorf("blocks = %s", b.Raw)
			}

			bob.MustDo("DELETE", rel+"/blocks/"+hstest.Esc(mallory.UserID), nil)
			mallory.MustDo("PUT", rel+"/follows/"+hstest.Esc(bob.UserID), map[string]any{})
			mallory.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
		})
	}
}

func TestDMPolicyFriendsOnly(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			carol, friend, stranger := srv.Register(t, "carol"), srv.Register(t, "friend"), srv.Register(t, "stranger")
			if p := carol.MustDo("GET", rel+"/privacy", nil); p.Get("dm_policy").String() != "anyone" {
				t.Errorf("default policy = %s", p.Raw)
			}
			carol.MustDo("PUT", rel+"/privacy", map[string]any{"dm_policy": "friends"})
			if p := carol.MustDo("GET", rel+"/privacy", nil); p.Get("dm_policy").String() != "friends" {
				t.Errorf("policy = %s", p.Raw)
			}
			id := friend.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": carol.UserID}).Get("request_id").String()
			carol.MustDo("POST", rel+"/friend_requests/"+hstest.Esc(id)+"/accept", map[string]any{})

			dm := map[string]any{"is_direct": true, "invite": []string{carol.UserID}, "preset": "trusted_private_chat"}
			if st, res := stranger.Do("POST", "/_matrix/client/v3/createRoom", dm); st != 403 || !strings.Contains(res.Get("error").String(), "friends only") {
				t.Errorf("stranger's DM = %d %s, want 403 friends only", st, res.Raw)
			}
			room := stranger.CreateRoom(map[string]any{"name": "party"})
			if st, _ := stranger.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": carol.UserID}); st != 403 {
				t.Errorf("stranger's invite = %d, want 403", st)
			}
			friend.CreateRoom(dm) // a friend may
			// Requests stay open to strangers: that is how they become friends.
			stranger.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": carol.UserID})
		})
	}
}

func TestSuggestionsRankByMutualFriends(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			users := map[string]*hstest.Client{}
			for _, n := range []string{"me", "f1", "f2", "f3", "x", "y", "z", "blocked", "pending"} {
				users[n] = srv.Register(t, n)
			}
			befriend := func(a, b string) {
				users[a].MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": users[b].UserID})
				users[b].MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": users[a].UserID})
			}
			for _, f := range []string{"f1", "f2", "f3"} {
				befriend("me", f)
			}
			// x knows all three of my friends, y two, z one; blocked and
			// pending know all three but must not be suggested.
			for _, e := range [][2]string{{"x", "f1"}, {"x", "f2"}, {"x", "f3"}, {"y", "f1"}, {"y", "f2"}, {"z", "f3"},
				{"blocked", "f1"}, {"blocked", "f2"}, {"blocked", "f3"}, {"pending", "f1"}, {"pending", "f2"}, {"pending", "f3"}} {
				befriend(e[0], e[1])
			}
			users["blocked"].MustDo("PUT", rel+"/blocks/"+hstest.Esc(users["me"].UserID), map[string]any{})
			users["me"].MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": users["pending"].UserID})

			res := users["me"].MustDo("GET", rel+"/friends/suggestions?limit=10", nil)
			var got []string
			for _, s := range res.Get("chunk").Array() {
				got = append(got, fmt.Sprintf("%s:%d", short(s.Get("user_id").String()), s.Get("mutual_friends").Int()))
			}
			if want := []string{"x:3", "y:2", "z:1"}; !slices.Equal(got, want) {
				t.Errorf("suggestions = %q, want %q", got, want)
			}
			mutual := users["me"].MustDo("GET", rel+"/friends/mutual/"+hstest.Esc(users["y"].UserID), nil)
			if mutual.Get("chunk.#").Int() != 2 {
				t.Errorf("mutual friends with y = %s", mutual.Raw)
			}
			if r := users["me"].MustDo("GET", rel+"/relationship/"+hstest.Esc(users["x"].UserID), nil); r.Get("mutual_friends").Int() != 3 {
				t.Errorf("relationship with x = %s", r.Raw)
			}
		})
	}
}

func TestFollowersPaging(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	star := srv.Register(t, "star")
	var want []string
	for i := 0; i < 7; i++ {
		fan := srv.Register(t, fmt.Sprintf("fan%d", i))
		fan.MustDo("PUT", rel+"/follows/"+hstest.Esc(star.UserID), map[string]any{})
		want = append(want, fan.UserID)
	}
	var got []string
	from := ""
	for pages := 0; pages < 10; pages++ {
		q := rel + "/users/" + hstest.Esc(star.UserID) + "/followers?limit=3"
		if from != "" {
			q += "&from=" + hstest.Esc(from)
		}
		res := star.MustDo("GET", q, nil)
		for _, u := range res.Get("chunk").Array() {
			got = append(got, u.Get("user_id").String())
		}
		from = res.Get("next_batch").String()
		if from == "" {
			break
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("followers = %q, want %q", got, want)
	}
	fans := srv.Login(t, "fan0").MustDo("GET", rel+"/users/"+hstest.Esc(want[0])+"/following", nil)
	if fans.Get("chunk.0.user_id").String() != star.UserID || fans.Get("chunk.0.displayname").String() != "star" {
		t.Errorf("following = %s", fans.Raw)
	}
}

func TestPresenceVisibleToFriends(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
			presence := "/_matrix/client/v3/presence/" + hstest.Esc(bob.UserID) + "/status"
			if st, _ := alice.Do("GET", presence, nil); st != 403 {
				t.Errorf("stranger's presence = %d, want 403", st)
			}
			id := alice.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": bob.UserID}).Get("request_id").String()
			bob.MustDo("POST", rel+"/friend_requests/"+hstest.Esc(id)+"/accept", map[string]any{})
			ad := newDevice(alice)
			bob.MustDo("PUT", presence, map[string]any{"presence": "unavailable", "status_msg": "lunch"})
			if p := alice.MustDo("GET", presence, nil); p.Get("presence").String() != "unavailable" {
				t.Errorf("friend's presence = %s", p.Raw)
			}
			res := ad.Sync(ad.since, 5000) // the change wakes a friend's long-poll
			var seen []string
			for _, e := range res.Get("presence.events").Array() {
				seen = append(seen, short(e.Get("sender").String())+":"+e.Get("content.presence").String())
			}
			if !slices.Contains(seen, "bob:unavailable") {
				t.Errorf("friend's sync presence = %q, want bob:unavailable", seen)
			}
			if st, _ := eve.Do("GET", presence, nil); st != 403 {
				t.Errorf("non-friend's presence = %d, want 403", st)
			}
		})
	}
}

// TestNeo4jGoneAnswers503 cuts the server's connection to Neo4j mid-run:
// relationship writes fail with 503 and change nothing, while messages and
// sync go on; when Neo4j is back, so are relationships.
func TestNeo4jGoneAnswers503(t *testing.T) {
	neo := os.Getenv("PARLEY_TEST_NEO4J_URL")
	if neo == "" {
		t.Skip("PARLEY_TEST_NEO4J_URL not set: skipping the Neo4j outage test")
	}
	u, err := url.Parse(neo)
	if err != nil {
		t.Fatal(err)
	}
	proxy := hstest.StartFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	srv := hstest.Start(t, hstest.Options{Store: hstest.Store{Name: "neo4j", Neo4jURL: u.String()}})
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	alice.MustDo("PUT", rel+"/follows/"+hstest.Esc(bob.UserID), map[string]any{})
	room := alice.CreateRoom(map[string]any{"name": "still here"})

	proxy.Cut()
	for _, c := range []struct{ method, path string }{
		{"PUT", rel + "/blocks/" + hstest.Esc(bob.UserID)},
		{"DELETE", rel + "/follows/" + hstest.Esc(bob.UserID)},
		{"GET", rel + "/friends"},
	} {
		st, res := alice.Do(c.method, c.path, map[string]any{})
		if st != 503 || res.Get("errcode").String() == "" {
			t.Errorf("%s %s with Neo4j gone = %d %s, want 503 with a Matrix error", c.method, c.path, st, res.Raw)
		}
	}
	alice.Send(room, "t1", "sync keeps working")
	if got := hstest.Bodies(alice.Sync("", 0), room); !slices.Contains(got, "sync keeps working") {
		t.Errorf("sync during the outage: %q", got)
	}

	proxy.Restore()
	hstest.Eventually(t, "relationships back", func() bool {
		st, _ := alice.Do("GET", rel+"/relationship/"+hstest.Esc(bob.UserID), nil)
		return st == 200
	})
	r := alice.MustDo("GET", rel+"/relationship/"+hstest.Esc(bob.UserID), nil)
	if !r.Get("following").Bool() || r.Get("blocked").Bool() {
		t.Errorf("after the outage: %s, want the follow kept and no block", r.Raw)
	}
}
