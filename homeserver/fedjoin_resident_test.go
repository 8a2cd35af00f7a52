package homeserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

// fedErr returns the HTTP status and errcode of a federation client error.
func fedErr(err error) (int, string) {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		code := ""
		if he.RespError != nil {
			code = he.RespError.ErrCode
		}
		return he.Response.StatusCode, code
	}
	return 0, ""
}

// buildJoin signs a make_join template as B would, with key.
func buildJoin(t *testing.T, raw json.RawMessage, version string, key *pdu.SigningKey) *pdu.Event {
	t.Helper()
	var tmpl rooms.Template
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("template: %v", err)
	}
	sk := tmpl.StateKey
	ev, err := pdu.Build(pdu.Proto{RoomID: tmpl.RoomID, Sender: tmpl.Sender, Type: tmpl.Type, StateKey: &sk, Content: tmpl.Content,
		PrevEvents: tmpl.PrevEvents, AuthEvents: tmpl.AuthEvents, Depth: tmpl.Depth, OriginServerTS: tmpl.OriginServerTS}, version, key)
	if err != nil {
		t.Fatalf("build join: %v", err)
	}
	return ev
}

// TestFederationMakeJoinRefusals: A's make_join refuses what a local join
// would refuse, and what federation adds: a banned user, an invite-only
// room without an invite, a server the room's ACL denies, a user of
// another server than the caller, a room version the caller lacks, a room
// A is not in. send_join refuses forged joins: a bad signature, an event
// of another room, an ID that is not the path's. omit_members leaves out
// all but a few members.
func TestFederationMakeJoinRefusals(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			ctx := context.Background()
			alice := a.Register(t, "alice")
			bobID := "@bob:" + b.FedName
			fc := b.Srv.Fed.Client.Client
			vers := []id.RoomVersion{"10", "11", "12"}
			makeJoin := func(room, user string, v []id.RoomVersion) (*federation.RespMakeJoin, error) {
				return fc.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: id.RoomID(room), UserID: id.UserID(user), Via: a.FedName, SupportedVersions: v})
			}

			public := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			private := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			banned := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(banned)+"/ban", map[string]any{"user_id": bobID})
			acl := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(acl)+"/state/m.room.server_acl/", map[string]any{"allow": []string{"*"}, "deny": []string{"127.0.0.3"}})

			for _, c := range []struct {
				name, room, user string
				vers             []id.RoomVersion
				status           int
				code             string
			}{
				{"banned", banned, bobID, vers, 403, "M_FORBIDDEN"},
				{"invite only", private, bobID, vers, 403, "M_FORBIDDEN"},
				{"denied by ACL", acl, bobID, vers, 403, "M_FORBIDDEN"},
				{"user of another server", public, "@eve:" + a.FedName, vers, 403, "M_FORBIDDEN"},
				{"no common version", public, bobID, []id.RoomVersion{"10"}, 400, "M_INCOMPATIBLE_ROOM_VERSION"},
				{"no ver at all", public, bobID, nil, 400, "M_INCOMPATIBLE_ROOM_VERSION"},
				{"unknown room", "!nowhere:" + a.FedName, bobID, vers, 404, "M_NOT_FOUND"},
			} {
				_, err := makeJoin(c.room, c.user, c.vers)
				if status, code := fedErr(err); status != c.status || code != c.code {
					t.Errorf("make_join, %s: got %d %s (%v), want %d %s", c.name, status, code, err, c.status, c.code)
				}
			}

			// Forged send_joins, built on a genuine template.
			mj, err := makeJoin(public, bobID, vers)
			if err != nil {
				t.Fatalf("make_join of the public room: %v", err)
			}
			version := string(mj.RoomVersion)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			forgedKey := &pdu.SigningKey{ServerName: b.FedName, KeyID: b.Srv.Key.KeyID, Private: other}
			good := buildJoin(t, mj.Event, version, b.Srv.Key)
			forged := buildJoin(t, mj.Event, version, forgedKey)
			for _, c := range []struct {
				name       string
				room, evID string
				ev         *pdu.Event
				status     int
				code       string
			}{
				{"bad signature", public, forged.ID, forged, 403, "M_FORBIDDEN"},
				{"another room", private, good.ID, good, 400, "M_BAD_JSON"},
				{"another event ID", public, "$" + strings.Repeat("A", 43), good, 400, "M_BAD_JSON"},
			} {
				_, err := fc.SendJoin(ctx, &federation.ReqSendJoin{RoomID: id.RoomID(c.room), EventID: id.EventID(c.evID), Event: c.ev.Raw, Via: a.FedName})
				if status, code := fedErr(err); status != c.status || code != c.code {
					t.Errorf("send_join, %s: got %d %s (%v), want %d %s", c.name, status, code, err, c.status, c.code)
				}
			}
			if got := memberOn(alice, public, bobID); got != "" {
				t.Errorf("bob's membership on A after forged joins = %q, want none", got)
			}

			// omit_members: six members on A, the answer keeps a few.
			for _, n := range []string{"m1", "m2", "m3", "m4", "m5", "m6"} {
				a.Register(t, n).Join(public)
			}
			mj, err = makeJoin(public, bobID, vers)
			if err != nil {
				t.Fatalf("make_join: %v", err)
			}
			join := buildJoin(t, mj.Event, version, b.Srv.Key)
			resp, err := fc.SendJoin(ctx, &federation.ReqSendJoin{RoomID: id.RoomID(public), EventID: id.EventID(join.ID), Event: join.Raw, Via: a.FedName, OmitMembers: true})
			if err != nil {
				t.Fatalf("send_join with omit_members: %v", err)
			}
			members := 0
			for _, raw := range resp.State {
				var e struct{ Type string }
				_ = json.Unmarshal(raw, &e)
				if e.Type == "m.room.member" {
					members++
				}
			}
			if !resp.MembersOmitted || members > 5 || members == 0 {
				t.Errorf("omit_members answer: members_omitted = %v with %d member events, want true with 1 to 5", resp.MembersOmitted, members)
			}
			if len(resp.AuthChain) == 0 || len(resp.Event) == 0 {
				t.Errorf("omit_members answer: %d auth chain events, event %q; want both", len(resp.AuthChain), resp.Event)
			}
			if got := memberOn(alice, public, bobID); got != "join" {
				t.Errorf("bob's membership on A after send_join = %q, want join", got)
			}
		})
	}
}
