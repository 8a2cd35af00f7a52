package homeserver_test

// The state-read part of the authorization matrix (issue 15, item 4): every
// route that returns room state, called by every kind of past member, must
// give only the state the caller could see while joined:
//   - joined now: the current state;
//   - joined once, then left, kicked or banned: the state as of the event that
//     ended their last join, never later (even when a ban follows the leave);
//   - never joined (invited, banned without joining): nothing, 403 M_FORBIDDEN;
//   - anyone, in a world_readable room: the current state.
// Spec: rooms.yaml GET /state and /members ("the state of the room when they
// left"; 403 "You aren't a member of the room and weren't previously a
// member of the room"), event_context.yaml (state "at the last event
// returned"), history_visibility.md.

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// What each actor may read of the room's state.
const (
	srLive    = "live"     // the current state
	srAtLeave = "at-leave" // the state when their last join ended
	srNone    = "none"     // no state at all
)

// srActors are the actors of room R and the state each may read.
var srActors = map[string]string{
	"invitee":         srNone,    // invited, never joined
	"banned-unjoined": srNone,    // invited, then banned without joining
	"banned-stranger": srNone,    // banned with no membership before
	"left-banned":     srAtLeave, // joined, left, then banned after more state changed
	"left":            srAtLeave, // joined, left
	"joined":          srLive,    // joined now
}

// State-read routes of the matrix.
const (
	srState         = "GET state"
	srStateTopic    = "GET state/m.room.topic"
	srStateLate     = "GET state/m.room.member/<latecomer>"
	srMembers       = "GET members"
	srMembersAt     = "GET members?at=<latest token>"
	srMembersJoin   = "GET members?membership=join"
	srMembersNotAt  = "GET members?not_membership=leave&at=<latest token>"
	srJoined        = "GET joined_members"
	srCtxOwn        = "GET context/<own membership event>"
	srCtxBefore     = "GET context/<message before the leaves>"
	srEventOwn      = "GET event/<own membership event>"
	srEventTopic    = "GET event/<topic set after the leaves>"
	srMessagesLazy  = "GET messages with lazy-loaded members"
	srWorldState    = "GET state in a world_readable room"
	srWorldMembers  = "GET members?at=<latest token> in a world_readable room"
	srWorldCtxEvent = "GET context/<message> in a world_readable room"
	// Room I has history_visibility "invited": history visibility lets the
	// invitee read events from their invite on, but never the room's state.
	srInvCtx      = "GET context/<message sent while invited> in an invited-visibility room"
	srInvEvent    = "GET event/<message sent while invited> in an invited-visibility room"
	srInvMessages = "GET messages with lazy-loaded members in an invited-visibility room"
)

var srRoutes = []string{
	srState, srStateTopic, srStateLate, srMembers, srMembersAt, srMembersJoin, srMembersNotAt, srJoined,
	srCtxOwn, srCtxBefore, srEventOwn, srEventTopic, srMessagesLazy,
	srWorldState, srWorldMembers, srWorldCtxEvent,
	srInvCtx, srInvEvent, srInvMessages,
}

// srWant is the expected status and errcode of a route for an actor.
func srWant(route, actor string) (int, string) {
	view := srActors[actor]
	switch route {
	case srState, srStateTopic, srMembers, srMembersAt, srMembersJoin, srMembersNotAt, srCtxOwn:
		if view == srNone {
			return 403, "M_FORBIDDEN"
		}
		return 200, ""
	case srStateLate:
		switch view {
		case srNone:
			return 403, "M_FORBIDDEN"
		case srAtLeave:
			return 404, "M_NOT_FOUND" // latecomer joined after they left
		}
		return 200, ""
	case srJoined:
		if view == srLive {
			return 200, ""
		}
		return 403, "M_FORBIDDEN"
	case srCtxBefore:
		if view == srNone {
			return 404, "M_NOT_FOUND" // history visibility hides the event itself
		}
		return 200, ""
	case srEventTopic:
		if view == srLive {
			return 200, ""
		}
		return 404, "M_NOT_FOUND"
	case srEventOwn, srMessagesLazy, srWorldState, srWorldMembers, srWorldCtxEvent:
		return 200, ""
	case srInvCtx, srInvEvent, srInvMessages:
		switch {
		case actor != "invitee": // never in room I
			if route == srInvMessages {
				return 403, "M_FORBIDDEN"
			}
			return 404, "M_NOT_FOUND"
		case route == srInvCtx:
			return 403, "M_FORBIDDEN" // the event is visible, the state is not
		}
		return 200, ""
	}
	panic("unknown route " + route)
}

// srWorld is the scenario: room R (private, shared history) and room W
// (world_readable) of alice.
type srWorld struct {
	alice, latecomer *hstest.Client
	actors           map[string]*hstest.Client
	room, world      string
	invRoom, invMsg  string            // room I and alice's message in it after the invite
	own              map[string]string // actor → their latest membership event in R
	before           string            // alice's message while the leavers were joined
	topicAfter       string            // the topic event set after the leaves
	worldMsg         string            // a message in W
	token            string            // a sync token after everything
}

const (
	srTopicBefore = "topic while the leavers were joined"
	srTopicAfter  = "topic set after the leaves"
	srNameAfter   = "Alice renamed after the leaves"
)

func srSetup(t *testing.T, store hstest.Store) *srWorld {
	t.Helper()
	srv := hstest.Start(t, hstest.Options{Store: store})
	w := &srWorld{actors: map[string]*hstest.Client{}, own: map[string]string{}}
	w.alice = srv.Register(t, "alice")
	w.latecomer = srv.Register(t, "latecomer")
	for actor := range srActors {
		w.actors[actor] = srv.Register(t, actor)
	}
	alice := w.alice
	w.room = alice.CreateRoom(map[string]any{
		"preset": "private_chat", "topic": srTopicBefore,
		"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]any{"history_visibility": "shared"}}},
	})
	rp := "/_matrix/client/v3/rooms/" + hstest.Esc(w.room)
	member := func(verb, actor string) {
		alice.MustDo("POST", rp+"/"+verb, map[string]any{"user_id": w.actors[actor].UserID})
	}
	for _, a := range []string{"invitee", "banned-unjoined", "left-banned", "left", "joined"} {
		member("invite", a)
	}
	for _, a := range []string{"left-banned", "left", "joined"} {
		w.actors[a].Join(w.room)
	}
	w.before = alice.Send(w.room, "sr-before", "before the leaves")
	for _, a := range []string{"left-banned", "left"} {
		w.actors[a].MustDo("POST", rp+"/leave", map[string]any{})
	}
	// Everything below happens after the leaves: no leaver may see it.
	w.topicAfter = alice.MustDo("PUT", rp+"/state/m.room.topic", map[string]any{"topic": srTopicAfter}).Get("event_id").String()
	alice.MustDo("PUT", rp+"/state/m.room.member/"+hstest.Esc(alice.UserID),
		map[string]any{"membership": "join", "displayname": srNameAfter})
	alice.MustDo("POST", rp+"/invite", map[string]any{"user_id": w.latecomer.UserID})
	w.latecomer.Join(w.room)
	for _, a := range []string{"left-banned", "banned-unjoined", "banned-stranger"} {
		member("ban", a)
	}
	alice.Send(w.room, "sr-after", "after the leaves")
	for actor, c := range w.actors {
		w.own[actor] = alice.MustDo("GET", rp+"/state/m.room.member/"+hstest.Esc(c.UserID)+"?format=event", nil).Get("event_id").String()
	}

	w.world = alice.CreateRoom(map[string]any{
		"preset": "public_chat", "topic": srTopicBefore,
		"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]any{"history_visibility": "world_readable"}}},
	})
	w.worldMsg = alice.Send(w.world, "sr-world", "in the world-readable room")
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(w.world)+"/state/m.room.topic", map[string]any{"topic": srTopicAfter})
	w.latecomer.Join(w.world)

	w.invRoom = alice.CreateRoom(map[string]any{
		"preset": "private_chat", "topic": srTopicBefore,
		"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]any{"history_visibility": "invited"}}},
	})
	alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(w.invRoom)+"/invite", map[string]any{"user_id": w.actors["invitee"].UserID})
	w.invMsg = alice.Send(w.invRoom, "sr-inv", "sent while invited")
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(w.invRoom)+"/state/m.room.topic", map[string]any{"topic": srTopicAfter})

	w.token = alice.Sync("", 0).Get("next_batch").String()
	return w
}

// path builds a route's request path for actor.
func (w *srWorld) path(route, actor string) string {
	rp := "/_matrix/client/v3/rooms/" + hstest.Esc(w.room)
	wp := "/_matrix/client/v3/rooms/" + hstest.Esc(w.world)
	ip := "/_matrix/client/v3/rooms/" + hstest.Esc(w.invRoom)
	at := url.QueryEscape(w.token)
	switch route {
	case srState:
		return rp + "/state"
	case srStateTopic:
		return rp + "/state/m.room.topic"
	case srStateLate:
		return rp + "/state/m.room.member/" + hstest.Esc(w.latecomer.UserID)
	case srMembers:
		return rp + "/members"
	case srMembersAt:
		return rp + "/members?at=" + at
	case srMembersJoin:
		return rp + "/members?membership=join"
	case srMembersNotAt:
		return rp + "/members?not_membership=leave&at=" + at
	case srJoined:
		return rp + "/joined_members"
	case srCtxOwn:
		return rp + "/context/" + hstest.Esc(w.own[actor]) + "?limit=0"
	case srCtxBefore:
		return rp + "/context/" + hstest.Esc(w.before)
	case srEventOwn:
		return rp + "/event/" + hstest.Esc(w.own[actor])
	case srEventTopic:
		return rp + "/event/" + hstest.Esc(w.topicAfter)
	case srMessagesLazy:
		return rp + "/messages?dir=b&limit=100&filter=" + url.QueryEscape(`{"lazy_load_members":true}`)
	case srWorldState:
		return wp + "/state"
	case srWorldMembers:
		return wp + "/members?at=" + at
	case srWorldCtxEvent:
		return wp + "/context/" + hstest.Esc(w.worldMsg)
	case srInvCtx:
		return ip + "/context/" + hstest.Esc(w.invMsg)
	case srInvEvent:
		return ip + "/event/" + hstest.Esc(w.invMsg)
	case srInvMessages:
		return ip + "/messages?dir=b&limit=100&filter=" + url.QueryEscape(`{"lazy_load_members":true}`)
	}
	panic("unknown route " + route)
}

// srSays reads a list of state events: the topic, whether latecomer is a
// member, and alice's display name.
func (w *srWorld) srSays(events gjson.Result) (topic string, latecomer bool, aliceName string) {
	for _, e := range events.Array() {
		switch {
		case e.Get("type").String() == "m.room.topic":
			topic = e.Get("content.topic").String()
		case e.Get("type").String() == "m.room.member" && e.Get("state_key").String() == w.latecomer.UserID:
			latecomer = true
		case e.Get("type").String() == "m.room.member" && e.Get("state_key").String() == w.alice.UserID:
			aliceName = e.Get("content.displayname").String()
		}
	}
	return topic, latecomer, aliceName
}

// checkBody looks inside a 200 answer for state the actor may not see.
func (w *srWorld) checkBody(route, actor string, res gjson.Result) string {
	view := srActors[actor]
	if strings.Contains(route, "world_readable") {
		view = srLive // anyone reads a world_readable room's current state
	}
	leaks := func(what string, events gjson.Result) string {
		topic, late, name := w.srSays(events)
		switch view {
		case srLive:
			if route != srCtxOwn && route != srCtxBefore && route != srWorldCtxEvent && (!late || (topic != "" && topic != srTopicAfter)) {
				return fmt.Sprintf("%s has topic %q, latecomer %v; want the current state", what, topic, late)
			}
		default:
			if late || topic == srTopicAfter || name == srNameAfter {
				return fmt.Sprintf("%s leaks state set after the leave: topic %q, latecomer %v, alice named %q", what, topic, late, name)
			}
		}
		return ""
	}
	switch route {
	case srState, srWorldState:
		return leaks("state", res)
	case srStateTopic:
		want := srTopicAfter
		if view != srLive {
			want = srTopicBefore
		}
		if got := res.Get("topic").String(); got != want {
			return fmt.Sprintf("topic = %q, want %q", got, want)
		}
	case srMembers, srMembersAt, srMembersJoin, srMembersNotAt, srWorldMembers:
		if !res.Get("chunk").IsArray() {
			return "no chunk"
		}
		if p := leaks("chunk", res.Get("chunk")); p != "" {
			return p
		}
		for _, e := range res.Get("chunk").Array() {
			m := e.Get("content.membership").String()
			if (route == srMembersJoin && m != "join") || (route == srMembersNotAt && m == "leave") {
				return fmt.Sprintf("chunk holds a %q member despite the filter", m)
			}
		}
	case srJoined:
		if !res.Get("joined." + authzGjsonKey(w.latecomer.UserID)).Exists() {
			return "joined_members lacks latecomer"
		}
	case srCtxOwn, srCtxBefore, srWorldCtxEvent:
		if !res.Get("state").IsArray() {
			return "no state in the context"
		}
		return leaks("context state", res.Get("state"))
	case srInvEvent:
		if got := res.Get("event_id").String(); got != w.invMsg {
			return fmt.Sprintf("event_id = %s, want %s", got, w.invMsg)
		}
	case srInvMessages:
		if !slices.ContainsFunc(res.Get("chunk").Array(), func(e gjson.Result) bool { return e.Get("event_id").String() == w.invMsg }) {
			return "chunk lacks the message sent while invited"
		}
		if n := len(res.Get("state").Array()); n > 0 {
			return fmt.Sprintf("lazy-loaded state of a user who never joined holds %d events, want none", n)
		}
	case srMessagesLazy:
		state := res.Get("state")
		if view == srNone && len(state.Array()) > 0 {
			return fmt.Sprintf("lazy-loaded state of a user who never joined holds %d events, want none", len(state.Array()))
		}
		if view == srAtLeave {
			if _, _, name := w.srSays(state); name == srNameAfter {
				return "lazy-loaded state leaks alice's display name set after the leave"
			}
		}
	}
	return ""
}

// TestAuthorizationMatrixStateReads runs every state-read route as every
// kind of past member, on both stores.
func TestAuthorizationMatrixStateReads(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := srSetup(t, store)
			for _, route := range srRoutes {
				for _, actor := range []string{"invitee", "banned-unjoined", "banned-stranger", "left-banned", "left", "joined"} {
					t.Run(actor+"/"+route, func(t *testing.T) {
						w.expect(t, route, actor)
					})
				}
			}
		})
	}
}

// expect runs route as actor and checks the answer against srWant and
// checkBody.
func (w *srWorld) expect(t *testing.T, route, actor string) {
	t.Helper()
	c := w.actors[actor]
	path := w.path(route, actor)
	st, res := c.Do("GET", path, nil)
	wantSt, wantCode := srWant(route, actor)
	if code := res.Get("errcode").String(); st != wantSt || code != wantCode {
		t.Errorf("GET %s as %s = %d %s %.300s, want %d %s", path, actor, st, code, res.Raw, wantSt, wantCode)
		return
	}
	if st == 200 {
		if p := w.checkBody(route, actor, res); p != "" {
			t.Errorf("GET %s as %s = 200 but %s; body %.400s", path, actor, p, res.Raw)
		}
	}
}

// The defects the attack found, one test each (issue 15, item 4).

// An invitee who never joined got the live member list from /members?at=
// and the full state from /context on their own invite.
func TestStateReadsInviteeWhoNeverJoinedGetsNoState(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := srSetup(t, store)
			for _, route := range []string{srMembersAt, srMembersNotAt, srCtxOwn, srMessagesLazy} {
				w.expect(t, route, "invitee")
			}
		})
	}
}

// A user banned without ever joining saw the member list and state at the
// ban.
func TestStateReadsBannedWithoutJoiningGetsNoState(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := srSetup(t, store)
			for _, actor := range []string{"banned-unjoined", "banned-stranger"} {
				for _, route := range []string{srMembersAt, srMembersNotAt, srCtxOwn, srMessagesLazy} {
					w.expect(t, route, actor)
				}
			}
		})
	}
}

// A user who left and was banned later saw state set after the leave; the
// state they may read is the state as of their leave.
func TestStateReadsLeftThenBannedSeesStateAtTheLeave(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := srSetup(t, store)
			for _, route := range []string{srMembersAt, srMembersNotAt, srCtxOwn, srMessagesLazy, srState, srStateTopic} {
				w.expect(t, route, "left-banned")
			}
		})
	}
}

// The leave section of a lazy-loading /sync carried the timeline senders'
// current member events: a leaver saw members changed after the leave, and
// a user banned without joining saw live member events.
func TestStateReadsSyncLeaveSectionLazyMembersClipped(t *testing.T) {
	filter := url.QueryEscape(`{"room":{"include_leave":true,"state":{"lazy_load_members":true},"timeline":{"limit":50}}}`)
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := srSetup(t, store)
			for _, actor := range []string{"left-banned", "left", "banned-unjoined", "banned-stranger"} {
				c := w.actors[actor]
				res := c.MustDo("GET", "/_matrix/client/v3/sync?timeout=0&filter="+filter, nil)
				room := hstest.Room(res, "leave", w.room)
				if !room.Exists() {
					t.Errorf("sync as %s: no leave section for the room; body %.400s", actor, res.Raw)
					continue
				}
				state := room.Get("state.events")
				if srActors[actor] == srNone {
					for _, e := range state.Array() {
						if e.Get("state_key").String() != c.UserID {
							t.Errorf("sync as %s (never joined): leave state holds %s %s, want none", actor, e.Get("type"), e.Get("state_key"))
						}
					}
					continue
				}
				if _, late, name := w.srSays(state); late || name == srNameAfter {
					t.Errorf("sync as %s: leave state has latecomer %v, alice named %q; want the state at the leave", actor, late, name)
				}
			}
		})
	}
}
