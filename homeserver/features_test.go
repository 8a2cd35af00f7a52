package homeserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

func TestProfilePresenceMediaDevices(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)

			// Profile: set, read back, and carried into the room.
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice A."})
			if got := bob.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID), nil).Get("displayname").String(); got != "Alice A." {
				t.Errorf("displayname = %q, want Alice A.", got)
			}
			members := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/joined_members", nil)
			if got := members.Get("joined." + strings.ReplaceAll(alice.UserID, ".", `\.`) + ".display_name").String(); got != "Alice A." {
				t.Errorf("member display name = %q, want Alice A.", got)
			}

			// Presence: set and seen by a room peer.
			alice.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(alice.UserID)+"/status", map[string]any{"presence": "unavailable", "status_msg": "lunch"})
			p := bob.MustDo("GET", "/_matrix/client/v3/presence/"+hstest.Esc(alice.UserID)+"/status", nil)
			if p.Get("presence").String() != "unavailable" || p.Get("status_msg").String() != "lunch" {
				t.Errorf("presence = %s, want unavailable/lunch", p.Raw)
			}

			// Media round trip through the authenticated endpoint.
			png := []byte("\x89PNG\r\n\x1a\nnot really a png")
			req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload?filename=a.png", bytes.NewReader(png))
			req.Header.Set("Authorization", "Bearer "+alice.Token)
			req.Header.Set("Content-Type", "image/png")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mxc := string(body)
			i := strings.Index(mxc, "mxc://localhost/")
			if resp.StatusCode != 200 || i < 0 {
				t.Fatalf("upload = %d %s", resp.StatusCode, body)
			}
			id := strings.TrimSuffix(mxc[i+len("mxc://localhost/"):], `"}`)
			id = strings.TrimSpace(strings.TrimSuffix(id, "\"}\n"))
			req, _ = http.NewRequest("GET", srv.URL+"/_matrix/client/v1/media/download/localhost/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+bob.Token)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, png) {
				t.Errorf("download = %d %q, want the uploaded bytes", resp.StatusCode, got)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("nosniff missing")
			}

			// Devices: a second login shows up; deleting it needs a password.
			alice2 := srv.Login(t, "alice")
			if n := len(alice.MustDo("GET", "/_matrix/client/v3/devices", nil).Get("devices").Array()); n != 2 {
				t.Errorf("devices = %d, want 2", n)
			}
			st, res := alice.Do("DELETE", "/_matrix/client/v3/devices/"+alice2.DeviceID, map[string]any{})
			if st != 401 || !res.Get("session").Exists() {
				t.Fatalf("delete without auth = %d %s, want a 401 UIA challenge", st, res.Raw)
			}
			alice.MustDo("DELETE", "/_matrix/client/v3/devices/"+alice2.DeviceID, map[string]any{"auth": map[string]any{
				"type": "m.login.password", "session": res.Get("session").String(), "password": "pw-alice",
				"identifier": map[string]any{"type": "m.id.user", "user": alice.UserID}}})
			if st, res := alice2.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 || res.Get("errcode").String() != "M_UNKNOWN_TOKEN" {
				t.Errorf("deleted device's token = %d %s, want 401 M_UNKNOWN_TOKEN", st, res.Raw)
			}

			// Account data reaches sync; m.direct set by a DM creation.
			dm := alice.CreateRoom(map[string]any{"is_direct": true, "invite": []string{bob.UserID}, "preset": "trusted_private_chat"})
			s := alice.Sync("", 0)
			found := false
			for _, e := range s.Get("account_data.events").Array() {
				if e.Get("type").String() == "m.direct" && strings.Contains(e.Get("content").Raw, dm) {
					found = true
				}
			}
			if !found {
				t.Errorf("m.direct lacks the DM: %s", s.Get("account_data").Raw)
			}
			if !hstest.Room(bob.Sync("", 0), "invite", dm).Exists() {
				t.Errorf("bob's sync has no invite to the DM")
			}
		})
	}
}

// TestToDeviceDeliveredOnceToTheRightDevice: a to-device message reaches
// the named device only, once, and is gone after the device acknowledges it
// by syncing with the next token.
func TestToDeviceDeliveredOnceToTheRightDevice(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob1 := srv.Register(t, "bob")
	bob2 := srv.Login(t, "bob")
	s1, s2 := bob1.Sync("", 0).Get("next_batch").String(), bob2.Sync("", 0).Get("next_batch").String()
	for i, txn := range []string{"t1", "t1"} { // the retry is a no-op
		alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/"+txn, map[string]any{
			"messages": map[string]any{bob1.UserID: map[string]any{bob1.DeviceID: map[string]any{"n": i}}}})
	}
	got := bob1.Sync(s1, 0)
	evs := got.Get("to_device.events").Array()
	if len(evs) != 1 || evs[0].Get("sender").String() != alice.UserID || evs[0].Get("content.n").Int() != 0 {
		t.Errorf("bob1 to_device = %s, want one message n=0 from alice", got.Get("to_device").Raw)
	}
	if again := bob1.Sync(got.Get("next_batch").String(), 0).Get("to_device.events").Array(); len(again) != 0 {
		t.Errorf("to-device redelivered after ack: %v", again)
	}
	if other := bob2.Sync(s2, 0).Get("to_device.events").Array(); len(other) != 0 {
		t.Errorf("bob2 received bob1's to-device message: %v", other)
	}
}

// TestPrivateRoomMediaStaysInTheRoom: media posted in a private room is
// served to its members (and its uploader), not to other signed-in users,
// and not on the legacy unauthenticated route; media no message carries
// stays open to signed-in users.
func TestPrivateRoomMediaStaysInTheRoom(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	upload := func(c *hstest.Client) string {
		req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", bytes.NewReader([]byte("secret bytes")))
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			ContentURI string `json:"content_uri"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return body.ContentURI
	}
	private, public := upload(alice), upload(alice)
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/f", map[string]any{
		"msgtype": "m.file", "body": "plan.txt", "url": private})
	get := func(c *hstest.Client, path, mxc string) int {
		req, _ := http.NewRequest("GET", srv.URL+path+strings.TrimPrefix(mxc, "mxc://"), nil)
		if c != nil {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const authed, legacy = "/_matrix/client/v1/media/download/", "/_matrix/media/v3/download/"
	cases := []struct {
		who  string
		c    *hstest.Client
		path string
		mxc  string
		want int
	}{
		{"uploader", alice, authed, private, 200},
		{"member", bob, authed, private, 200},
		{"outsider", eve, authed, private, 404},
		{"no token, legacy", nil, legacy, private, 404},
		{"outsider, unposted media", eve, authed, public, 200},
		{"no token, legacy, unposted", nil, legacy, public, 200},
	}
	for _, c := range cases {
		if got := get(c.c, c.path, c.mxc); got != c.want {
			t.Errorf("%s fetching %s = %d, want %d", c.who, c.mxc, got, c.want)
		}
	}
}
