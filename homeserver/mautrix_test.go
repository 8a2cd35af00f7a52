package homeserver_test

// An unmodified second client library, mautrix-go, driving Parley end to end
// over real HTTP. Every request goes through mautrix's own calls, so what is
// checked here is what a mautrix-based bot or bridge would see.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/homeserver/hstest"
)

// timelineLimit50 is an inline filter: /sync takes a filter ID or a JSON
// filter in the same query parameter, and mautrix passes FilterID verbatim.
const timelineLimit50 = `{"room":{"timeline":{"limit":50}}}`

func TestMautrixScenario(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			// Nothing below may hang: every request shares this deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()

			// 1. Two users, alice on two devices.
			alice1 := mxRegister(ctx, t, srv.URL, "alice")
			bob := mxRegister(ctx, t, srv.URL, "bob")
			alice2 := mxLogin(ctx, t, srv.URL, "alice")
			if alice2.UserID != alice1.UserID {
				t.Fatalf("second login user = %s, want %s", alice2.UserID, alice1.UserID)
			}
			if alice2.DeviceID == alice1.DeviceID {
				t.Fatalf("second login device = %s, want a new device (first is %s)", alice2.DeviceID, alice1.DeviceID)
			}

			// 2. A DM and a group joined by alias.
			dmResp, err := alice1.CreateRoom(ctx, &mautrix.ReqCreateRoom{
				Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.UserID},
			})
			if err != nil {
				t.Fatalf("create DM: %v", err)
			}
			dm := dmResp.RoomID
			if j, err := bob.JoinRoom(ctx, dm.String(), nil); err != nil {
				t.Fatalf("bob joins DM: %v", err)
			} else if j.RoomID != dm {
				t.Errorf("bob joins DM: room = %s, want %s", j.RoomID, dm)
			}

			groupResp, err := alice1.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "acceptance"})
			if err != nil {
				t.Fatalf("create group: %v", err)
			}
			group := groupResp.RoomID
			if _, err := alice1.InviteUser(ctx, group, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
				t.Fatalf("invite bob to group: %v", err)
			}
			const alias = id.RoomAlias("#acceptance:localhost")
			if j, err := bob.JoinRoom(ctx, alias.String(), nil); err != nil {
				t.Fatalf("bob joins %s: %v", alias, err)
			} else if j.RoomID != group {
				t.Fatalf("bob joins %s: room = %s, want %s", alias, j.RoomID, group)
			}
			if res, err := bob.ResolveAlias(ctx, alias); err != nil {
				t.Errorf("resolve %s: %v", alias, err)
			} else {
				if res.RoomID != group {
					t.Errorf("resolve %s = %s, want %s", alias, res.RoomID, group)
				}
				if !slices.Contains(res.Servers, "localhost") {
					t.Errorf("resolve %s servers = %v, want to contain localhost", alias, res.Servers)
				}
			}
			if got := mxJoined(ctx, t, alice1, group); !slices.Equal(got, mxSortedIDs(alice1.UserID, bob.UserID)) {
				t.Errorf("group joined members = %v, want alice and bob", got)
			}

			// 3. 30 messages, each with its own txnId, then one retried send.
			var wantBodies []string
			var wantIDs []id.EventID
			for i := range 30 {
				body := fmt.Sprintf("msg %02d", i)
				resp, err := alice1.SendMessageEvent(ctx, group, event.EventMessage,
					&event.MessageEventContent{MsgType: event.MsgText, Body: body},
					mautrix.ReqSendEvent{TransactionID: fmt.Sprintf("acceptance-%02d", i)})
				if err != nil {
					t.Fatalf("send %q: %v", body, err)
				}
				if resp.EventID == "" || slices.Contains(wantIDs, resp.EventID) {
					t.Fatalf("send %q: event ID %q, want a new non-empty ID", body, resp.EventID)
				}
				wantBodies = append(wantBodies, body)
				wantIDs = append(wantIDs, resp.EventID)
			}
			retried := &event.MessageEventContent{MsgType: event.MsgText, Body: "retried once"}
			first, err := alice1.SendMessageEvent(ctx, group, event.EventMessage, retried, mautrix.ReqSendEvent{TransactionID: "acceptance-retry"})
			if err != nil {
				t.Fatalf("send with txn acceptance-retry: %v", err)
			}
			again, err := alice1.SendMessageEvent(ctx, group, event.EventMessage, retried, mautrix.ReqSendEvent{TransactionID: "acceptance-retry"})
			if err != nil {
				t.Fatalf("resend with txn acceptance-retry: %v", err)
			}
			if again.EventID != first.EventID {
				t.Errorf("retried txn event = %s, want %s (the first send's)", again.EventID, first.EventID)
			}
			wantBodies = append(wantBodies, "retried once")
			wantIDs = append(wantIDs, first.EventID)
			newest := first.EventID

			// Transaction IDs are scoped to one device: alice's second device
			// reusing the first device's txnId sends a new event.
			dm1, err := alice1.SendMessageEvent(ctx, dm, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: "hello from laptop"}, mautrix.ReqSendEvent{TransactionID: "dm-1"})
			if err != nil {
				t.Fatalf("alice1 DM send: %v", err)
			}
			dm2, err := alice2.SendMessageEvent(ctx, dm, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: "hello from phone"}, mautrix.ReqSendEvent{TransactionID: "dm-1"})
			if err != nil {
				t.Fatalf("alice2 DM send: %v", err)
			}
			if dm2.EventID == dm1.EventID {
				t.Errorf("alice2 txn dm-1 = %s, the same event as alice1's txn dm-1; want a new event (txnIds are per device)", dm2.EventID)
			}

			// 4. Every device pages the group back and sees one order; an
			// initial sync shows the same.
			devices := []struct {
				name string
				cli  *mautrix.Client
			}{{"alice1", alice1}, {"alice2", alice2}, {"bob", bob}}
			for _, d := range devices {
				bodies, ids := mxPageBack(ctx, t, d.cli, group)
				if !slices.Equal(bodies, wantBodies) {
					t.Errorf("%s /messages bodies = %q, want %q", d.name, bodies, wantBodies)
				}
				if !slices.Equal(ids, wantIDs) {
					t.Errorf("%s /messages event IDs = %v, want %v", d.name, ids, wantIDs)
				}
				s, err := d.cli.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: timelineLimit50})
				if err != nil {
					t.Fatalf("%s initial sync: %v", d.name, err)
				}
				bodies, ids = mxTimeline(t, s, group)
				if !slices.Equal(bodies, wantBodies) {
					t.Errorf("%s initial sync bodies = %q, want %q", d.name, bodies, wantBodies)
				}
				if !slices.Equal(ids, wantIDs) {
					t.Errorf("%s initial sync event IDs = %v, want %v", d.name, ids, wantIDs)
				}
			}
			if bodies, _ := mxPageBack(ctx, t, bob, dm); !slices.Equal(bodies, []string{"hello from laptop", "hello from phone"}) {
				t.Errorf("bob DM bodies = %q, want [hello from laptop hello from phone]", bodies)
			}

			// 5. Unread counts, cleared by a read receipt.
			s, err := bob.SyncRequest(ctx, 0, "", "", false, "")
			if err != nil {
				t.Fatalf("bob initial sync: %v", err)
			}
			room := s.Rooms.Join[group]
			if room == nil {
				t.Fatalf("bob initial sync lacks the group %s", group)
			}
			if room.UnreadNotifications == nil {
				t.Errorf("bob initial sync: group has no unread_notifications, want notification_count 31")
			} else if got := room.UnreadNotifications.NotificationCount; got != len(wantIDs) {
				t.Errorf("bob unread = %d, want %d (30 messages + 1 retried send)", got, len(wantIDs))
			}
			if evs := room.Timeline.Events; len(evs) == 0 {
				t.Errorf("bob initial sync group timeline is empty, want it to end with %s", newest)
			} else if got := evs[len(evs)-1].ID; got != newest {
				t.Errorf("bob initial sync newest group event = %s, want %s", got, newest)
			}
			if err := bob.SendReceipt(ctx, group, newest, event.ReceiptTypeRead, nil); err != nil {
				t.Fatalf("bob m.read receipt: %v", err)
			}
			next, err := bob.SyncRequest(ctx, 0, s.NextBatch, "", false, "")
			if err != nil {
				t.Fatalf("bob sync after receipt: %v", err)
			}
			if room := next.Rooms.Join[group]; room == nil {
				t.Errorf("bob incremental sync after receipt lacks the group; want its m.receipt")
			} else {
				if !mxHasReadReceipt(t, room, newest, bob.UserID) {
					t.Errorf("bob incremental sync ephemeral = %s, want an m.receipt of bob on %s", mxRaw(room.Ephemeral.Events), newest)
				}
				if un := room.UnreadNotifications; un != nil && un.NotificationCount != 0 {
					t.Errorf("bob unread in incremental sync = %d, want 0", un.NotificationCount)
				}
			}
			if fresh, err := bob.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
				t.Errorf("bob initial sync after receipt: %v", err)
			} else if room := fresh.Rooms.Join[group]; room == nil || room.UnreadNotifications == nil {
				t.Errorf("bob initial sync after receipt: no unread_notifications for the group")
			} else if got := room.UnreadNotifications.NotificationCount; got != 0 {
				t.Errorf("bob unread = %d, want 0", got)
			}

			// 6. A waiting long-poll wakes for alice's message.
			since := next.NextBatch
			type polled struct {
				resp  *mautrix.RespSync
				err   error
				at    time.Time
				polls int
			}
			written := make(chan struct{})
			var once sync.Once
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(written) }) }}
			woken := make(chan polled, 1)
			go func() {
				// A server may return early with nothing new (the spec allows
				// it); keep polling until the message arrives or ctx ends.
				tctx := httptrace.WithClientTrace(ctx, trace)
				from := since
				for n := 1; ; n++ {
					resp, err := bob.SyncRequest(tctx, 30000, from, "", false, "")
					if err != nil || mxHasBody(resp, group, "wake up") {
						woken <- polled{resp, err, time.Now(), n}
						return
					}
					from = resp.NextBatch
				}
			}()
			select {
			case <-written: // the request is on the wire; the server is (about to be) waiting
			case p := <-woken:
				t.Fatalf("long-poll returned before alice sent anything: %v", p.err)
			case <-ctx.Done():
				t.Fatalf("long-poll request never sent: %v", ctx.Err())
			}
			sentStart := time.Now()
			wake, err := alice1.SendText(ctx, group, "wake up")
			if err != nil {
				t.Fatalf("alice sends wake-up: %v", err)
			}
			sentAt := time.Now()
			var p polled
			select {
			case p = <-woken:
			case <-ctx.Done():
				t.Fatalf("long-poll never returned: %v", ctx.Err())
			}
			if p.err != nil {
				t.Fatalf("long-poll sync: %v", p.err)
			}
			t.Logf("long-poll wake delay: %v after alice's send returned (%v after it started; %d sync request(s))",
				p.at.Sub(sentAt), p.at.Sub(sentStart), p.polls)
			if p.polls != 1 {
				t.Logf("note: the first long-poll returned without the message; %d requests were needed", p.polls)
			}
			if _, ids := mxTimeline(t, p.resp, group); !slices.Contains(ids, wake.EventID) {
				t.Errorf("woken sync group events = %v, want to contain %s", ids, wake.EventID)
			}

			// 7. Typing reaches bob's incremental sync; presence and profile
			// are readable by bob.
			if _, err := alice1.UserTyping(ctx, group, true, 20*time.Second); err != nil {
				t.Fatalf("alice typing: %v", err)
			}
			mxWaitTyping(ctx, t, bob, p.resp.NextBatch, group, alice1.UserID)

			if err := alice1.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away"}); err != nil {
				t.Fatalf("alice sets presence: %v", err)
			}
			if pr, err := bob.GetPresence(ctx, alice1.UserID); err != nil {
				t.Errorf("bob gets alice's presence: %v", err)
			} else if pr.Presence != event.PresenceUnavailable || pr.StatusMsg != "away" {
				t.Errorf("alice's presence = %q/%q, want unavailable/away", pr.Presence, pr.StatusMsg)
			}

			if err := alice1.SetDisplayName(ctx, "Alice A"); err != nil {
				t.Fatalf("alice sets display name: %v", err)
			}
			if prof, err := bob.GetProfile(ctx, alice1.UserID); err != nil {
				t.Errorf("bob gets alice's profile: %v", err)
			} else if prof.DisplayName != "Alice A" {
				t.Errorf("alice's display name = %q, want Alice A", prof.DisplayName)
			}
			// The change is carried into her member events (spec: "Events on
			// change of profile information").
			hstest.Eventually(t, "alice's new display name in the group's joined members", func() bool {
				jm, err := bob.JoinedMembers(ctx, group)
				return err == nil && jm.Joined[alice1.UserID].DisplayName == "Alice A"
			})

			// 8. Power levels: a plain member cannot rename the room; after a
			// kick bob cannot send.
			_, err = bob.SendStateEvent(ctx, group, event.StateRoomName, "", &event.RoomNameEventContent{Name: "bob's room"})
			mxWantForbidden(t, "bob sets m.room.name", err)
			var name event.RoomNameEventContent
			if err := alice1.StateEvent(ctx, group, event.StateRoomName, "", &name); !errors.Is(err, mautrix.MNotFound) {
				t.Errorf("group m.room.name after the refused change = %q (err %v), want M_NOT_FOUND", name.Name, err)
			}
			if _, err := alice1.KickUser(ctx, group, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "acceptance"}); err != nil {
				t.Fatalf("alice kicks bob: %v", err)
			}
			_, err = bob.SendText(ctx, group, "still here?")
			mxWantForbidden(t, "kicked bob sends", err)
			if got := mxJoined(ctx, t, alice1, group); !slices.Equal(got, []id.UserID{alice1.UserID}) {
				t.Errorf("group joined members after kick = %v, want only %s", got, alice1.UserID)
			}

			// 9. Media: upload, then download over the authenticated v1 API.
			if v, err := bob.Versions(ctx); err != nil {
				t.Errorf("versions: %v", err)
			} else if !v.ContainsGreaterOrEqual(mautrix.SpecV111) {
				t.Errorf("versions = %v, want v1.11 or later (authenticated media)", v.Versions)
			}
			dot := mxPNG(t)
			up, err := alice1.UploadBytesWithName(ctx, dot, "image/png", "dot.png")
			if err != nil {
				t.Fatalf("upload dot.png: %v", err)
			}
			if up.ContentURI.Homeserver != "localhost" || up.ContentURI.FileID == "" {
				t.Fatalf("upload content URI = %q, want mxc://localhost/<id>", up.ContentURI.String())
			}
			got, err := bob.DownloadBytes(ctx, up.ContentURI)
			if err != nil {
				t.Fatalf("bob downloads %s: %v", up.ContentURI.String(), err)
			}
			if !bytes.Equal(got, dot) {
				t.Errorf("downloaded %d bytes %x, want the %d uploaded bytes %x", len(got), got, len(dot), dot)
			}
			if resp, err := bob.Download(ctx, up.ContentURI); err != nil {
				t.Errorf("bob downloads %s: %v", up.ContentURI.String(), err)
			} else {
				resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
					t.Errorf("download Content-Type = %q, want image/png", ct)
				}
			}
		})
	}
}

// mxClient is a mautrix client for the test server with no credentials yet.
func mxClient(t *testing.T, base string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatalf("mautrix.NewClient(%s): %v", base, err)
	}
	cli.Client = &http.Client{Timeout: 90 * time.Second}
	return cli
}

// mxRegister registers name through m.login.dummy and returns its client.
func mxRegister(ctx context.Context, t *testing.T, base, name string) *mautrix.Client {
	t.Helper()
	cli := mxClient(t, base)
	req := &mautrix.ReqRegister[any]{Username: name, Password: "pw-" + name, InitialDeviceDisplayName: "mautrix"}
	res, err := cli.RegisterDummy(ctx, req)
	if session, challenge := mxUIAChallengeWithErrcode(err); challenge != "" {
		// The spec's first 401 of user-interactive auth is {flows, params,
		// session}; errcode and error are added only after a failed attempt
		// at a stage. mautrix (like the spec) reads a 401 that carries an
		// errcode as a refusal, so RegisterDummy cannot register. Report it,
		// then finish the dummy stage with mautrix's Register so the rest of
		// the scenario still runs.
		t.Errorf("RegisterDummy(%s) = %v: POST /_matrix/client/v3/register without auth answered 401 %s; "+
			"want the UIA challenge without errcode/error (spec: User-Interactive Authentication API)", name, err, challenge)
		req.Auth = mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: session}
		res, _, err = cli.Register(ctx, req)
	}
	if err != nil {
		t.Fatalf("RegisterDummy(%s): %v", name, err)
	}
	if want := id.NewUserID(name, "localhost"); res.UserID != want || res.AccessToken == "" || res.DeviceID == "" {
		t.Fatalf("RegisterDummy(%s) = user %q device %q token set %v, want user %s with a device and a token",
			name, res.UserID, res.DeviceID, res.AccessToken != "", want)
	}
	cli.SetCredentials(res.UserID, res.AccessToken)
	cli.DeviceID = res.DeviceID
	return cli
}

// mxUIAChallengeWithErrcode recognises a user-interactive auth challenge
// (a 401 with flows and a session) that also carries an errcode, and returns
// its session and body.
func mxUIAChallengeWithErrcode(err error) (session, body string) {
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || !httpErr.IsStatus(http.StatusUnauthorized) || httpErr.RespError == nil {
		return "", ""
	}
	extra := httpErr.RespError.ExtraData
	session, _ = extra["session"].(string)
	if session == "" || extra["flows"] == nil {
		return "", ""
	}
	raw, _ := json.Marshal(extra)
	return session, string(raw)
}

// mxLogin logs name in as a new device with m.login.password.
func mxLogin(ctx context.Context, t *testing.T, base, name string) *mautrix.Client {
	t.Helper()
	cli := mxClient(t, base)
	res, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:         "pw-" + name,
		StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	if res.AccessToken == "" || res.DeviceID == "" {
		t.Fatalf("Login(%s) = device %q token set %v, want both", name, res.DeviceID, res.AccessToken != "")
	}
	return cli
}

// mxBody returns the body of an m.room.message, parsed by mautrix.
func mxBody(t *testing.T, evt *event.Event) (string, bool) {
	t.Helper()
	if evt.Type != event.EventMessage {
		return "", false
	}
	if evt.Content.Parsed == nil {
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			t.Errorf("parse %s content %s: %v", evt.ID, evt.Content.VeryRaw, err)
		}
	}
	return evt.Content.AsMessage().Body, true
}

// mxPageBack reads a room with /messages backwards in pages of 10 and
// returns the message bodies and their event IDs, oldest first.
func mxPageBack(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID) ([]string, []id.EventID) {
	t.Helper()
	var bodies []string
	var ids []id.EventID
	from := ""
	for page := 0; ; page++ {
		if page == 100 {
			t.Fatalf("%s: /messages of %s still going after 100 pages", cli.DeviceID, roomID)
		}
		resp, err := cli.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 10)
		if err != nil {
			t.Fatalf("%s: /messages of %s from %q: %v", cli.DeviceID, roomID, from, err)
		}
		if len(resp.Chunk) > 10 {
			t.Errorf("%s: /messages page of %d events, want at most 10", cli.DeviceID, len(resp.Chunk))
		}
		if len(resp.Chunk) == 0 {
			break
		}
		for _, evt := range resp.Chunk {
			if b, ok := mxBody(t, evt); ok {
				bodies = append(bodies, b)
				ids = append(ids, evt.ID)
			}
		}
		if resp.End == "" { // spec: omitted when there is nothing further back
			break
		}
		if resp.End == from {
			t.Fatalf("%s: /messages end token %q did not move", cli.DeviceID, from)
		}
		from = resp.End
	}
	slices.Reverse(bodies)
	slices.Reverse(ids)
	return bodies, ids
}

// mxTimeline lists a joined room's message bodies and IDs in a sync.
func mxTimeline(t *testing.T, s *mautrix.RespSync, roomID id.RoomID) ([]string, []id.EventID) {
	t.Helper()
	var bodies []string
	var ids []id.EventID
	room := s.Rooms.Join[roomID]
	if room == nil {
		return nil, nil
	}
	for _, evt := range room.Timeline.Events {
		if b, ok := mxBody(t, evt); ok {
			bodies = append(bodies, b)
			ids = append(ids, evt.ID)
		}
	}
	return bodies, ids
}

// mxHasBody reports whether a sync's timeline for roomID has a message with
// this body. It reads the raw content and needs no *testing.T, so a
// goroutine may call it.
func mxHasBody(s *mautrix.RespSync, roomID id.RoomID, body string) bool {
	room := s.Rooms.Join[roomID]
	if room == nil {
		return false
	}
	for _, evt := range room.Timeline.Events {
		if evt.Type == event.EventMessage && evt.Content.Raw["body"] == body {
			return true
		}
	}
	return false
}

// mxJoined lists a room's joined members, sorted.
func mxJoined(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID) []id.UserID {
	t.Helper()
	jm, err := cli.JoinedMembers(ctx, roomID)
	if err != nil {
		t.Fatalf("joined members of %s: %v", roomID, err)
	}
	var out []id.UserID
	for u := range jm.Joined {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

func mxSortedIDs(ids ...id.UserID) []id.UserID {
	slices.Sort(ids)
	return ids
}

// mxHasReadReceipt reports whether a room's ephemeral events carry user's
// m.read receipt on eventID.
func mxHasReadReceipt(t *testing.T, room *mautrix.SyncJoinedRoom, eventID id.EventID, user id.UserID) bool {
	t.Helper()
	for _, evt := range room.Ephemeral.Events {
		if evt.Type != event.EphemeralEventReceipt {
			continue
		}
		if evt.Content.Parsed == nil {
			if err := evt.Content.ParseRaw(evt.Type); err != nil {
				t.Errorf("parse m.receipt %s: %v", evt.Content.VeryRaw, err)
				continue
			}
		}
		if _, ok := (*evt.Content.AsReceipt())[eventID][event.ReceiptTypeRead][user]; ok {
			return true
		}
	}
	return false
}

// mxWaitTyping long-polls incremental syncs until one has an m.typing for
// roomID that lists typist.
func mxWaitTyping(ctx context.Context, t *testing.T, cli *mautrix.Client, since string, roomID id.RoomID, typist id.UserID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var seen []string
	for {
		s, err := cli.SyncRequest(ctx, 10000, since, "", false, "")
		if err != nil {
			t.Errorf("no m.typing listing %s in %s's incremental syncs (%v); ephemeral seen: %v", typist, cli.UserID, err, seen)
			return
		}
		if room := s.Rooms.Join[roomID]; room != nil {
			for _, evt := range room.Ephemeral.Events {
				seen = append(seen, string(evt.Content.VeryRaw))
				if evt.Type != event.EphemeralEventTyping {
					continue
				}
				if evt.Content.Parsed == nil {
					if err := evt.Content.ParseRaw(evt.Type); err != nil {
						t.Errorf("parse m.typing %s: %v", evt.Content.VeryRaw, err)
						continue
					}
				}
				if slices.Contains(evt.Content.AsTyping().UserIDs, typist) {
					return
				}
			}
		}
		since = s.NextBatch
	}
}

// mxWantForbidden checks err is an HTTP 403 M_FORBIDDEN from the server.
func mxWantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want 403 M_FORBIDDEN", what)
		return
	}
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || !httpErr.IsStatus(http.StatusForbidden) || !errors.Is(err, mautrix.MForbidden) {
		t.Errorf("%s = %v, want 403 M_FORBIDDEN", what, err)
	}
}

func mxRaw(evts []*event.Event) []string {
	var out []string
	for _, e := range evts {
		out = append(out, e.Type.Type+" "+string(e.Content.VeryRaw))
	}
	return out
}

// mxPNG is a real 1x1 PNG.
func mxPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.NRGBA{R: 0x20, G: 0x80, B: 0xe0, A: 0xff})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}
