package homeserver_test

import (
	"net/url"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestInviteStateCarriesInviter: a DM invite's invite_state, in initial and
// incremental syncs, with and without lazy-loaded members, carries the
// spec's stripped state: create, join rules, name, avatar, canonical alias,
// encryption, the invitee's own invite and the inviter's member event (by
// which a client names the DM instead of "Empty room").
func TestInviteStateCarriesInviter(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice Liddell"})
			plain := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			alice.MustDo("PUT", "/_matrix/client/v3/directory/room/"+hstest.Esc("#dm:localhost"), map[string]any{"room_id": plain})
			for typ, content := range map[string]map[string]any{
				"m.room.name":            {"name": "Tea party"},
				"m.room.avatar":          {"url": "mxc://localhost/avatar"},
				"m.room.canonical_alias": {"alias": "#dm:localhost"},
				"m.room.encryption":      {"algorithm": "m.megolm.v1.aes-sha2"},
			} {
				alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(plain)+"/state/"+typ+"/", content)
			}
			dm := alice.CreateRoom(map[string]any{"preset": "trusted_private_chat", "is_direct": true, "invite": []string{bob.UserID}})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(plain)+"/invite", map[string]any{"user_id": bob.UserID})

			check := func(name string, sync gjson.Result, roomID string, wantTypes []string) {
				t.Helper()
				events := sync.Get("rooms.invite." + apiKey(roomID) + ".invite_state.events").Array()
				got := map[string]gjson.Result{}
				for _, e := range events {
					got[e.Get("type").String()+"|"+e.Get("state_key").String()] = e
				}
				inviter, ok := got["m.room.member|"+alice.UserID]
				if !ok {
					t.Errorf("%s: invite_state of %s has no inviter member event: %s", name, roomID, sync.Get("rooms.invite."+apiKey(roomID)).Raw)
				} else if inviter.Get("content.displayname").String() != "Alice Liddell" || inviter.Get("content.membership").String() != "join" || inviter.Get("sender").String() != alice.UserID {
					t.Errorf("%s: inviter member event = %s, want alice's join with her display name", name, inviter.Raw)
				}
				if own := got["m.room.member|"+bob.UserID]; own.Get("content.membership").String() != "invite" || own.Get("content.is_direct").Raw != "true" && roomID == dm {
					t.Errorf("%s: invitee's own member event = %s, want the (direct) invite", name, own.Raw)
				}
				for _, typ := range wantTypes {
					if _, ok := got[typ+"|"]; !ok {
						t.Errorf("%s: invite_state of %s lacks %s", name, roomID, typ)
					}
				}
				for k, e := range got {
					if e.Get("type").String() == "m.room.member" && k != "m.room.member|"+alice.UserID && k != "m.room.member|"+bob.UserID {
						t.Errorf("%s: invite_state carries another member event %s", name, k)
					}
				}
			}
			plainTypes := []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption"}
			dmTypes := []string{"m.room.create", "m.room.join_rules"}
			lazy := "&filter=" + url.QueryEscape(`{"room":{"state":{"lazy_load_members":true}}}`)
			for _, f := range []struct{ name, q string }{{"full members", ""}, {"lazy members", lazy}} {
				initial := bob.MustDo("GET", "/_matrix/client/v3/sync?timeout=0"+f.q, nil)
				check("initial sync, "+f.name, initial, dm, dmTypes)
				check("initial sync, "+f.name, initial, plain, plainTypes)
			}

			// Incremental: an invite that arrives after the token.
			since := bob.Sync("", 0).Get("next_batch").String()
			third := alice.CreateRoom(map[string]any{"preset": "private_chat", "name": "Later"})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(third)+"/invite", map[string]any{"user_id": bob.UserID})
			for _, f := range []struct{ name, q string }{{"full members", ""}, {"lazy members", lazy}} {
				var inc gjson.Result
				hstest.Eventually(t, "the invite reaches bob's incremental sync", func() bool {
					inc = bob.MustDo("GET", "/_matrix/client/v3/sync?timeout=1000&since="+url.QueryEscape(since)+f.q, nil)
					return inc.Get("rooms.invite." + apiKey(third)).Exists()
				})
				check("incremental sync, "+f.name, inc, third, []string{"m.room.create", "m.room.join_rules", "m.room.name"})
			}
		})
	}
}
