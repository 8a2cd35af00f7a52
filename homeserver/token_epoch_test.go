package homeserver_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestStaleEpochTokens: a token from another store epoch (one a client kept
// from before a restore) means nothing in this one. /keys/changes,
// /messages and /relations treat it as /sync does, as absent:
// /keys/changes then reports every change, /messages and /relations page
// from the end (or start). Before, they read its stale position: a client
// whose token was ahead of the restored store missed every device change
// and every message.
func TestStaleEpochTokens(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			var first string
			for i := range 3 {
				id := alice.Send(room, "m"+strconv.Itoa(i), "message "+strconv.Itoa(i))
				if i == 0 {
					first = id
				}
			}
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.reaction/r0", map[string]any{
				"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": first, "key": "+1"}})
			next := alice.Sync("", 0).Get("next_batch").String()
			body, epoch, ok := strings.Cut(next, "~")
			if !ok {
				t.Fatalf("next_batch %q carries no epoch", next)
			}
			pos, err := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(body, "s"), "_", 2)[0], 10, 64)
			if err != nil {
				t.Fatalf("next_batch %q: %v", next, err)
			}
			other := "stale1"
			if epoch == other {
				other = "stale2"
			}
			// A token from before a restore: ahead of the restored store.
			stale := "s" + strconv.FormatInt(pos+1000, 10) + "_0~" + other
			current := "s" + strconv.FormatInt(pos+1000, 10) + "_0~" + epoch

			bob.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(bob, "1")}) // bob's device list changes
			changes := func(from string) []string {
				return apiStrings(alice.MustDo("GET", "/_matrix/client/v3/keys/changes?from="+url.QueryEscape(from), nil).Get("changed"))
			}
			if got := changes(stale); !slices.Contains(got, bob.UserID) {
				t.Errorf("/keys/changes from a stale token = %v, want %s in it (every change)", got, bob.UserID)
			}
			if got := changes(current); len(got) != 0 {
				t.Errorf("/keys/changes from a current token ahead of everything = %v, want none", got)
			}

			page := func(q string) []string {
				var out []string
				for _, e := range alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?"+q, nil).Get("chunk").Array() {
					if b := e.Get("content.body"); b.Exists() {
						out = append(out, b.String())
					}
				}
				return out
			}
			for _, tc := range []struct {
				q    string
				want []string
			}{
				{"dir=f&limit=100&from=" + url.QueryEscape(stale), []string{"message 0", "message 1", "message 2"}},
				{"dir=b&limit=100&to=" + url.QueryEscape(stale), []string{"message 2", "message 1", "message 0"}},
				{"dir=f&limit=100&from=" + url.QueryEscape(current), nil},
			} {
				if got := page(tc.q); !slices.Equal(got, tc.want) {
					t.Errorf("/messages?%s = %q, want %q", tc.q, got, tc.want)
				}
			}

			rel := alice.MustDo("GET", "/_matrix/client/v1/rooms/"+hstest.Esc(room)+"/relations/"+hstest.Esc(first)+"?dir=f&from="+url.QueryEscape(stale), nil)
			if got := len(rel.Get("chunk").Array()); got != 1 {
				t.Errorf("/relations?dir=f from a stale token = %d events, want the 1 reaction", got)
			}
		})
	}
}
