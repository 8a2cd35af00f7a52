package homeserver_test

import (
	"fmt"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestWokenSyncReadsPushRulesFromCache: a member woken by a message in a
// shared room makes at most 2 queries for the incremental sync; the push
// rules, loaded by the initial sync, cost none (they cost a third query
// before the cache).
func TestWokenSyncReadsPushRulesFromCache(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String()
			alice.Send(room, "x", "wake up")
			before := srv.Srv.Store.Queries()
			s := bob.Sync(since, 0)
			n := srv.Srv.Store.Queries() - before
			if got := hstest.Bodies(s, room); len(got) != 1 {
				t.Fatalf("sync bodies = %v, want the one new message", got)
			}
			if n > 2 {
				t.Errorf("woken incremental sync made %d queries, want at most 2 (push rules from the cache)", n)
			}
		})
	}
}

// TestPushRuleChangeSeenByNextSync: muting and unmuting a room through the
// push-rule API changes the unread counts of the very next sync, so the
// cache never serves a stale document.
func TestPushRuleChangeSeenByNextSync(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String() // warms the cache
			rule := "/_matrix/client/v3/pushrules/global/room/" + hstest.Esc(room)
			steps := []struct {
				name   string
				change func()
				want   int64
			}{
				{"unmuted", func() {}, 1},
				{"muted", func() { bob.MustDo("PUT", rule, map[string]any{"actions": []any{}}) }, 0},
				{"rule disabled", func() {
					bob.MustDo("PUT", rule+"/enabled", map[string]any{"enabled": false})
				}, 3},
				{"rule enabled", func() {
					bob.MustDo("PUT", rule+"/enabled", map[string]any{"enabled": true})
				}, 0},
				{"rule deleted", func() { bob.MustDo("DELETE", rule, nil) }, 5},
			}
			for i, step := range steps {
				step.change()
				alice.Send(room, fmt.Sprint("m", i), "chatter")
				s := bob.Sync(since, 0)
				since = s.Get("next_batch").String()
				un := hstest.Room(s, "join", room).Get("unread_notifications")
				if got := un.Get("notification_count").Int(); got != step.want {
					t.Errorf("%s: notification_count = %d, want %d (%s)", step.name, got, step.want, un.Raw)
				}
			}
		})
	}
}
