package homeserver_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// sliding posts one sliding sync request; pos "" starts the connection.
func sliding(t *testing.T, c *hstest.Client, pos string, timeoutMs int, body map[string]any) gjson.Result {
	t.Helper()
	q := url.Values{}
	if pos != "" {
		q.Set("pos", pos)
	}
	if timeoutMs > 0 {
		q.Set("timeout", fmt.Sprint(timeoutMs))
	}
	return c.MustDo("POST", slidingPath+"?"+q.Encode(), body)
}

func gkey(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '|', '#', '@', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func roomIDs(res gjson.Result, list string) []string {
	var out []string
	for _, id := range res.Get("lists." + gkey(list) + ".ops.0.room_ids").Array() {
		out = append(out, id.String())
	}
	return out
}

func stateKeys(room gjson.Result) map[string]bool {
	out := map[string]bool{}
	for _, e := range room.Get("required_state").Array() {
		out[e.Get("type").String()+"|"+e.Get("state_key").String()] = true
	}
	return out
}

func TestSlidingSyncListsAndRooms(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			r1 := alice.CreateRoom(map[string]any{"name": "One"})
			r2 := alice.CreateRoom(map[string]any{"name": "Two"})
			dm := alice.CreateRoom(map[string]any{"is_direct": true, "invite": []string{bob.UserID}})
			bob.Join(dm)
			inv := bob.CreateRoom(map[string]any{"name": "Bob's", "invite": []string{alice.UserID}})
			two := alice.Send(r2, "t1", "hello two")
			first := bob.Send(dm, "t2", "hello dm")

			body := map[string]any{
				"conn_id": "main",
				"lists": map[string]any{"all": map[string]any{
					"ranges": [][]int{{0, 2}}, "timeline_limit": 2,
					"required_state": [][]string{{"m.room.create", ""}, {"m.room.member", "$LAZY"}, {"m.room.name", "*"}},
				}},
			}
			res := sliding(t, alice, "", 0, body)
			if got := res.Get("lists.all.count").Int(); got != 4 {
				t.Fatalf("count = %d, want 4 (%s)", got, res.Get("lists").Raw)
			}
			// Most recent first: the DM (bob's message), r2, the invite.
			if got, want := roomIDs(res, "all"), []string{dm, r2, inv}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("window = %v, want %v", got, want)
			}
			if res.Get("rooms." + gkey(r1)).Exists() {
				t.Fatalf("room out of range sent: %s", res.Get("rooms").Raw)
			}
			// Filtered lists: is_dm (m.direct) and is_invite; a list without
			// ranges shows every room it matches.
			filtered := sliding(t, alice, "", 0, map[string]any{"conn_id": "filters", "lists": map[string]any{
				"dms":      map[string]any{"ranges": [][]int{{0, 9}}, "filters": map[string]any{"is_dm": true}},
				"not-dms":  map[string]any{"ranges": [][]int{{0, 9}}, "filters": map[string]any{"is_dm": false}},
				"invites":  map[string]any{"ranges": [][]int{{0, 9}}, "filters": map[string]any{"is_invite": true}},
				"no-range": map[string]any{"filters": map[string]any{"is_invite": false}},
			}})
			for list, want := range map[string][]string{"dms": {dm}, "not-dms": {r2, inv, r1}, "invites": {inv}} {
				if got := roomIDs(filtered, list); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("list %s = %v, want %v", list, got, want)
				}
			}
			if got := filtered.Get("lists.no-range.count").Int(); got != 3 {
				t.Errorf("list no-range count = %d, want 3", got)
			}
			if n := len(filtered.Get("rooms").Map()); n != 4 {
				t.Errorf("filtered lists sent %d rooms, want all 4: %s", n, filtered.Get("rooms").Raw)
			}
			room := res.Get("rooms." + gkey(dm))
			if !room.Get("initial").Bool() || room.Get("joined_count").Int() != 2 || room.Get("name").Exists() {
				t.Fatalf("dm = %s, want initial, 2 joined, no name", room.Raw)
			}
			if h := room.Get("heroes.0.user_id").String(); h != bob.UserID {
				t.Fatalf("dm heroes = %s, want %s", room.Get("heroes").Raw, bob.UserID)
			}
			tl := room.Get("timeline").Array()
			if len(tl) != 2 || tl[1].Get("content.body").String() != "hello dm" || !room.Get("limited").Bool() {
				t.Fatalf("dm timeline = %s limited %v, want 2 events ending with hello dm, limited", room.Get("timeline").Raw, room.Get("limited"))
			}
			keys := stateKeys(room)
			if !keys["m.room.create|"] || !keys["m.room.member|"+bob.UserID] || len(keys) != 2 {
				t.Fatalf("dm required_state = %v, want the create and bob's member ($LAZY)", keys)
			}
			if got := res.Get("rooms." + gkey(r2) + ".name").String(); got != "Two" {
				t.Fatalf("r2 name = %q, want Two", got)
			}
			iv := res.Get("rooms." + gkey(inv))
			if iv.Get("timeline").Exists() || len(iv.Get("invite_state").Array()) == 0 {
				t.Fatalf("invite = %s, want invite_state and no timeline", iv.Raw)
			}
			pos := res.Get("pos").String()

			// A message in r1 moves it to the front; only it is sent.
			alice.Send(r1, "t3", "hello one")
			res = sliding(t, alice, pos, 0, body)
			if got, want := roomIDs(res, "all"), []string{r1, dm, r2}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("window after message = %v, want %v", got, want)
			}
			rooms := res.Get("rooms").Map()
			one := res.Get("rooms." + gkey(r1))
			if len(rooms) != 1 || !one.Get("initial").Bool() {
				t.Fatalf("rooms = %s, want r1 alone, initial (new to the window)", res.Get("rooms").Raw)
			}
			pos = res.Get("pos").String()
			alice.Send(r1, "t4", "again")
			res = sliding(t, alice, pos, 0, body)
			one = res.Get("rooms." + gkey(r1))
			if one.Get("initial").Bool() || len(one.Get("timeline").Array()) != 1 || one.Get("num_live").Int() != 1 ||
				one.Get("timeline.0.content.body").String() != "again" || one.Get("required_state").Exists() {
				t.Fatalf("incremental r1 = %s, want the one new event, live, no state", one.Raw)
			}
			pos = res.Get("pos").String()

			// A subscription keeps a room sent before in view with a wider
			// required_state: the room comes at once with the state it now
			// asks for, as a change, not afresh.
			notMine := bob.CreateRoom(map[string]any{"name": "bob alone"})
			body["room_subscriptions"] = map[string]any{r1: map[string]any{"timeline_limit": 1, "required_state": [][]string{{"*", "*"}}},
				notMine: map[string]any{"timeline_limit": 1}}
			body["lists"] = map[string]any{"all": map[string]any{"ranges": [][]int{{0, 0}}, "timeline_limit": 1, "required_state": [][]string{}}}
			last := bob.Send(dm, "t5", "bump dm")
			res = sliding(t, alice, pos, 0, body)
			if res.Get("rooms." + gkey(notMine)).Exists() {
				t.Fatalf("a subscription to a room alice is not in was answered: %s", res.Get("rooms").Raw)
			}
			sub := res.Get("rooms." + gkey(r1))
			if sub.Get("initial").Bool() || !stateKeys(sub)["m.room.power_levels|"] || !stateKeys(sub)["m.room.member|"+alice.UserID] {
				t.Fatalf("subscribed r1 = %s, want its whole state, not initial", sub.Raw)
			}
			if dmRoom := res.Get("rooms." + gkey(dm)); dmRoom.Get("timeline.0.content.body").String() != "bump dm" || dmRoom.Get("notification_count").Int() != 2 {
				t.Fatalf("dm = %s, want the new message", dmRoom.Raw)
			}
			pos = res.Get("pos").String()

			// A receipt moves no count of alice's and sends no room; reading
			// the DM clears its count, which is sent.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(dm)+"/receipt/m.read/"+hstest.Esc(first), map[string]any{})
			res = sliding(t, alice, pos, 0, body)
			if n := len(res.Get("rooms").Map()); n != 0 {
				t.Fatalf("rooms after bob's receipt = %s, want none", res.Get("rooms").Raw)
			}
			pos = res.Get("pos").String()
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(dm)+"/receipt/m.read/"+hstest.Esc(last), map[string]any{})
			res = sliding(t, alice, pos, 0, body)
			if got := res.Get("rooms." + gkey(dm)); !got.Exists() || got.Get("notification_count").Int() != 0 || got.Get("timeline").Exists() {
				t.Fatalf("dm after reading = %s, want its cleared count alone", got.Raw)
			}
			// A receipt is no activity: the order stays by events.
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(r2)+"/receipt/m.read/"+hstest.Esc(two), map[string]any{})
			res = sliding(t, alice, res.Get("pos").String(), 0, body)
			if got := roomIDs(res, "all"); len(got) != 1 || got[0] != dm {
				t.Fatalf("window after a receipt in r2 = %v, want [%s]", got, dm)
			}
		})
	}
}

func TestSlidingSyncUnknownPos(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Store: hstest.Store{Name: "sqlite"}})
	alice := srv.Register(t, "alice")
	body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}}}}
	first := sliding(t, alice, "", 0, body).Get("pos").String()
	lost := sliding(t, alice, first, 0, body).Get("pos").String()
	// A client that lost the answer retries with the pos before it; the
	// answer it did not process is then unknown, as is first once the
	// retry's answer is used.
	second := sliding(t, alice, first, 0, body).Get("pos").String()
	third := sliding(t, alice, second, 0, body).Get("pos").String()
	sliding(t, alice, third, 0, body)
	if st, res := alice.Do("POST", slidingPath+"?pos=bogus", body); st != 400 || res.Get("errcode").String() != "M_UNKNOWN" {
		t.Errorf("pos bogus: %d %s, want 400 M_UNKNOWN (Synapse's Invalid stream token)", st, res.Raw)
	}
	for _, pos := range []string{"0_1", first, lost, "x" + third} {
		st, res := alice.Do("POST", slidingPath+"?pos="+url.QueryEscape(pos), body)
		if st != 400 || res.Get("errcode").String() != "M_UNKNOWN_POS" {
			t.Errorf("pos %q: %d %s, want 400 M_UNKNOWN_POS", pos, st, res.Raw)
		}
	}
	// Another device's pos is not this one's.
	alice2 := srv.Login(t, "alice")
	if st, res := alice2.Do("POST", slidingPath+"?pos="+url.QueryEscape(third), body); st != 400 || res.Get("errcode").String() != "M_UNKNOWN_POS" {
		t.Errorf("other device: %d %s, want 400 M_UNKNOWN_POS", st, res.Raw)
	}
	for _, bad := range []string{`{"lists":{"a":{"ranges":[[3,1]]}}}`, `{"lists":{"a":{"required_state":[["x"]]}}}`, `{"room_subscriptions":{"nope":{}}}`} {
		if st, res := alice.Do("POST", slidingPath, []byte(bad)); st != 400 || res.Get("errcode").String() != "M_BAD_JSON" {
			t.Errorf("%s: %d %s, want 400 M_BAD_JSON", bad, st, res.Raw)
		}
	}
}

func TestSlidingSyncLongPoll(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})
			body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 5}}}
			pos := sliding(t, alice, "", 0, body).Get("pos").String()
			done := make(chan gjson.Result, 1)
			start := time.Now()
			go func() { done <- sliding(t, alice, pos, 20000, body) }()
			alice.Send(room, "t1", "wake up")
			res := <-done
			if got := res.Get("rooms." + gkey(room) + ".timeline.0.content.body").String(); got != "wake up" {
				t.Fatalf("long-poll answered %s, want the new message", res.Raw)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Fatalf("long-poll took %v: not woken", d)
			}
			// With nothing new, a zero timeout answers at once with no rooms.
			res = sliding(t, alice, res.Get("pos").String(), 0, body)
			if n := len(res.Get("rooms").Map()); n != 0 {
				t.Fatalf("quiet sync sent %d rooms: %s", n, res.Raw)
			}
			// Typing wakes a long-poll with the typing extension on.
			bob := srv.Register(t, "bob")
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
			bob.Join(room)
			body["extensions"] = map[string]any{"typing": map[string]any{"enabled": true}}
			pos = sliding(t, alice, res.Get("pos").String(), 0, body).Get("pos").String()
			go func() { done <- sliding(t, alice, pos, 20000, body) }()
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/typing/"+hstest.Esc(bob.UserID), map[string]any{"typing": true, "timeout": 30000})
			res = <-done
			if got := res.Get("extensions.typing.rooms." + gkey(room) + ".content.user_ids.0").String(); got != bob.UserID {
				t.Fatalf("typing long-poll answered %s, want bob typing", res.Raw)
			}
		})
	}
}

func TestSlidingSyncExtensions(t *testing.T) {
	const alg = "signed_curve25519"
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			other := alice.CreateRoom(map[string]any{"name": "out of the window"})
			alice.Send(room, "t0", "newest") // room first, other second
			ev := bob.Send(room, "t1", "read me")
			alice.MustDo("PUT", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/account_data/m.test.global", map[string]any{"g": 1})
			alice.MustDo("PUT", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/rooms/"+hstest.Esc(room)+"/account_data/m.test.room", map[string]any{"r": 1})
			alice.MustDo("PUT", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/rooms/"+hstest.Esc(other)+"/account_data/m.test.room", map[string]any{"r": 2})
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
				"device_keys":   apiDeviceKeys(alice, "1"),
				"one_time_keys": map[string]any{alg + ":AAAAAQ": apiSignedKey(alice, "otk-1", false)},
				"fallback_keys": map[string]any{alg + ":AAAAAw": apiSignedKey(alice, "fallback-1", true)},
			})
			bob.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/td1", map[string]any{
				"messages": map[string]any{alice.UserID: map[string]any{alice.DeviceID: map[string]any{"n": 1}}}})
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read/"+hstest.Esc(ev), map[string]any{})
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/typing/"+hstest.Esc(bob.UserID), map[string]any{"typing": true, "timeout": 30000})

			exts := func(since string) map[string]any {
				return map[string]any{
					"to_device":    map[string]any{"enabled": true, "since": since},
					"e2ee":         map[string]any{"enabled": true},
					"account_data": map[string]any{"enabled": true},
					"receipts":     map[string]any{"enabled": true},
					"typing":       map[string]any{"enabled": true},
				}
			}
			body := map[string]any{
				"lists":      map[string]any{"all": map[string]any{"ranges": [][]int{{0, 0}}, "timeline_limit": 3}},
				"extensions": exts(""),
			}
			res := sliding(t, alice, "", 0, body)
			x := res.Get("extensions")
			if got := x.Get("to_device.events.0.content.n").Int(); got != 1 || x.Get("to_device.events.0.sender").String() != bob.UserID {
				t.Errorf("to_device = %s, want bob's message", x.Get("to_device").Raw)
			}
			if got := x.Get("e2ee.device_one_time_keys_count." + alg).Int(); got != 1 {
				t.Errorf("e2ee = %s, want 1 %s", x.Get("e2ee").Raw, alg)
			}
			if got := x.Get("e2ee.device_unused_fallback_key_types.0").String(); got != alg {
				t.Errorf("fallback types = %s, want [%s]", x.Get("e2ee.device_unused_fallback_key_types").Raw, alg)
			}
			if x.Get("e2ee.device_lists").Exists() {
				t.Errorf("a new connection's e2ee has device_lists: %s", x.Get("e2ee").Raw)
			}
			var globals []string
			for _, a := range x.Get("account_data.global").Array() {
				globals = append(globals, a.Get("type").String())
			}
			if fmt.Sprint(globals) != "[m.test.global m.push_rules]" && fmt.Sprint(globals) != "[m.push_rules m.test.global]" {
				t.Errorf("global account data = %v, want m.test.global and m.push_rules", globals)
			}
			if got := x.Get("account_data.rooms." + gkey(room) + ".0.content.r").Int(); got != 1 {
				t.Errorf("room account data = %s, want room's (and only the window's)", x.Get("account_data.rooms").Raw)
			}
			if x.Get("account_data.rooms." + gkey(other)).Exists() {
				t.Errorf("account data of a room outside the window: %s", x.Get("account_data.rooms").Raw)
			}
			if got := x.Get("receipts.rooms." + gkey(room) + ".content." + gkey(ev) + ".m\\.read." + gkey(bob.UserID)); !got.Exists() {
				t.Errorf("receipts = %s, want bob's on %s", x.Get("receipts").Raw, ev)
			}
			if got := x.Get("typing.rooms." + gkey(room) + ".content.user_ids.0").String(); got != bob.UserID {
				t.Errorf("typing = %s, want bob", x.Get("typing").Raw)
			}
			pos, next := res.Get("pos").String(), x.Get("to_device.next_batch").String()

			// Acknowledged: the message is not sent again. New device keys of
			// a room peer show in device_lists; typing stops.
			body["extensions"] = exts(next)
			bob.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(bob, "b")})
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/typing/"+hstest.Esc(bob.UserID), map[string]any{"typing": false})
			alice.MustDo("PUT", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/account_data/m.test.global", map[string]any{"g": 2})
			res = sliding(t, alice, pos, 0, body)
			x = res.Get("extensions")
			if n := len(x.Get("to_device.events").Array()); n != 0 {
				t.Errorf("to_device after ack = %s, want none", x.Get("to_device").Raw)
			}
			if got := x.Get("e2ee.device_lists.changed").Array(); len(got) != 1 || got[0].String() != bob.UserID {
				t.Errorf("device_lists = %s, want bob changed", x.Get("e2ee.device_lists").Raw)
			}
			if got := x.Get("typing.rooms." + gkey(room) + ".content.user_ids").Raw; got != "[]" {
				t.Errorf("typing = %s, want the room with nobody typing", x.Get("typing").Raw)
			}
			if got := x.Get("account_data.global").Array(); len(got) != 1 || got[0].Get("content.g").Int() != 2 {
				t.Errorf("global account data = %s, want the one change", x.Get("account_data.global").Raw)
			}
			if x.Get("receipts.rooms." + gkey(room)).Exists() {
				t.Errorf("receipts sent again: %s", x.Get("receipts").Raw)
			}
			// A second connection of the device with since "" finds the queue empty.
			res = sliding(t, alice, "", 0, map[string]any{"conn_id": "other", "extensions": exts("")})
			if n := len(res.Get("extensions.to_device.events").Array()); n != 0 {
				t.Errorf("to_device on a new connection after ack = %s, want none (deleted)", res.Get("extensions.to_device").Raw)
			}
		})
	}
}

func TestSlidingSyncLeave(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			left := alice.CreateRoom(map[string]any{"name": "left"})
			kicked := bob.CreateRoom(map[string]any{"name": "kicked", "invite": []string{alice.UserID}})
			alice.Join(kicked)
			invited := bob.CreateRoom(map[string]any{"invite": []string{alice.UserID}})
			body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 3,
				"required_state": [][]string{{"m.room.create", ""}}}}}
			res := sliding(t, alice, "", 0, body)
			if res.Get("lists.all.count").Int() != 3 {
				t.Fatalf("count = %s, want 3", res.Get("lists.all.count").Raw)
			}
			pos := res.Get("pos").String()

			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(left)+"/leave", map[string]any{})
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(kicked)+"/kick", map[string]any{"user_id": alice.UserID})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(invited)+"/leave", map[string]any{})
			res = sliding(t, alice, pos, 0, body)
			if got := res.Get("lists.all.count").Int(); got != 0 {
				t.Errorf("count after leaving = %d, want 0", got)
			}
			for _, c := range []struct{ room, by string }{{left, alice.UserID}, {kicked, bob.UserID}, {invited, alice.UserID}} {
				r := res.Get("rooms." + gkey(c.room))
				var own gjson.Result
				for _, e := range r.Get("required_state").Array() {
					if e.Get("type").String() == "m.room.member" && e.Get("state_key").String() == alice.UserID {
						own = e
					}
				}
				if own.Get("content.membership").String() != "leave" || own.Get("sender").String() != c.by {
					t.Errorf("room %s = %s, want alice's leave by %s in required_state", c.room, r.Raw, c.by)
				}
			}
			if got := res.Get("rooms." + gkey(kicked) + ".timeline.@reverse.0.content.membership").String(); got != "leave" {
				t.Errorf("kicked room's timeline = %s, want it to end with the kick", res.Get("rooms."+gkey(kicked)+".timeline").Raw)
			}
			// Sent once: the connection forgets them.
			bob.Send(kicked, "t1", "after the kick")
			res = sliding(t, alice, res.Get("pos").String(), 0, body)
			if n := len(res.Get("rooms").Map()); n != 0 {
				t.Errorf("rooms after = %s, want none", res.Get("rooms").Raw)
			}
		})
	}
}

func TestSlidingSyncTimelineLimitGrows(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})
			for i := 0; i < 5; i++ {
				alice.Send(room, fmt.Sprint("t", i), fmt.Sprint("m", i))
			}
			list := func(limit int) map[string]any {
				return map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": limit}}}
			}
			res := sliding(t, alice, "", 0, list(1))
			r := res.Get("rooms." + gkey(room))
			if len(r.Get("timeline").Array()) != 1 || !r.Get("limited").Bool() {
				t.Fatalf("first = %s, want 1 event, limited", r.Raw)
			}
			// A larger limit sends the latest events again, at once.
			res = sliding(t, alice, res.Get("pos").String(), 0, list(3))
			r = res.Get("rooms." + gkey(room))
			if tl := r.Get("timeline").Array(); len(tl) != 3 || tl[2].Get("content.body").String() != "m4" ||
				!r.Get("unstable_expanded_timeline").Bool() || r.Get("initial").Exists() || r.Get("num_live").Int() != 0 {
				t.Fatalf("after the limit grew = %s, want m2..m4, expanded, not initial, none live", r.Raw)
			}
			// Narrowed with no gap and widened again: the client has them.
			res = sliding(t, alice, res.Get("pos").String(), 0, list(1))
			alice.Send(room, "t5", "m5")
			res = sliding(t, alice, res.Get("pos").String(), 0, list(1))
			if got := res.Get("rooms." + gkey(room) + ".timeline.0.content.body").String(); got != "m5" {
				t.Fatalf("new event = %s, want m5", res.Get("rooms").Raw)
			}
			res = sliding(t, alice, res.Get("pos").String(), 0, list(3))
			if n := len(res.Get("rooms").Map()); n != 0 {
				t.Fatalf("widened back = %s, want nothing: the client holds the latest 3", res.Get("rooms").Raw)
			}
		})
	}
}
