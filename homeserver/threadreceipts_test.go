package homeserver_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/tidwall/gjson"
)

// threadFilter asks sync for unread counts split by thread.
const threadFilter = `{"room":{"timeline":{"unread_thread_notifications":true}}}`

func syncThreads(c *hstest.Client) gjson.Result {
	return c.MustDo("GET", "/_matrix/client/v3/sync?filter="+url.QueryEscape(threadFilter), nil)
}

func receiptPath(room, typ, ev string) string {
	return "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/receipt/" + typ + "/" + hstest.Esc(ev)
}

// TestThreadedReceipts (issue 14): a receipt in a thread clears that thread
// only, a "main" receipt the main timeline only, an unthreaded receipt
// everything up to its event; sync splits the counts when the filter asks
// (unread_notifications for the main timeline, unread_thread_notifications
// per root) and sums them when it does not; receipts carry their thread_id.
func TestThreadedReceipts(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			rootA := alice.Send(room, "a", "thread A")
			rootB := alice.Send(room, "b", "thread B")
			a1 := threadReply(alice, room, rootA, "a1")
			threadReply(alice, room, rootA, "a2")
			b1 := threadReply(alice, room, rootB, "b1")
			m := alice.Send(room, "m", "main again")

			type counts struct{ main, a, b, total int64 }
			check := func(step string, want counts) {
				t.Helper()
				r := hstest.Room(syncThreads(bob), "join", room)
				got := counts{
					main: r.Get("unread_notifications.notification_count").Int(),
					a:    r.Get("unread_thread_notifications." + gjson.Escape(rootA) + ".notification_count").Int(),
					b:    r.Get("unread_thread_notifications." + gjson.Escape(rootB) + ".notification_count").Int(),
				}
				got.total = hstest.Room(bob.Sync("", 0), "join", room).Get("unread_notifications.notification_count").Int()
				if got != want {
					t.Errorf("%s: counts (main, A, B, unsplit) = %+v, want %+v", step, got, want)
				}
			}
			check("start", counts{3, 2, 1, 6})
			bob.MustDo("POST", receiptPath(room, "m.read", a1), map[string]any{"thread_id": rootA})
			check("receipt at a1 in thread A", counts{3, 1, 1, 5})
			bob.MustDo("POST", receiptPath(room, "m.read.private", m), map[string]any{"thread_id": "main"})
			check("main receipt at the newest main event", counts{0, 1, 1, 2})
			bob.MustDo("POST", receiptPath(room, "m.read", a1), map[string]any{})
			check("unthreaded receipt at a1", counts{0, 1, 1, 2})
			bob.MustDo("POST", receiptPath(room, "m.read", b1), map[string]any{})
			check("unthreaded receipt at b1 (after a2)", counts{0, 0, 0, 0})
			threadReply(alice, room, rootA, "a3")
			check("a3", counts{0, 1, 0, 1})

			// The receipts go out with their thread.
			// At a1 bob holds a threaded and a newer unthreaded receipt: one
			// goes out, the newer.
			rcpt := hstest.Room(alice.Sync("", 0), "join", room).Get(`ephemeral.events.#(type=="m.receipt").content`)
			if got := strings.Count(rcpt.Get(gjson.Escape(a1)+".m\\.read").Raw, bob.UserID); got != 1 {
				t.Errorf("bob appears %d times in the m.read receipts at a1, want 1 (%s)", got, rcpt.Raw)
			}
			if got := rcpt.Get(gjson.Escape(m) + ".m\\.read\\.private"); got.Exists() {
				t.Errorf("bob's private receipt went to alice: %s", got.Raw)
			}
			rcpt = hstest.Room(bob.Sync("", 0), "join", room).Get(`ephemeral.events.#(type=="m.receipt").content`)
			if got := rcpt.Get(gjson.Escape(m) + ".m\\.read\\.private." + gjson.Escape(bob.UserID) + ".thread_id").String(); got != "main" {
				t.Errorf("thread_id of bob's main receipt = %q, want main (%s)", got, rcpt.Raw)
			}
			if got := rcpt.Get(gjson.Escape(b1) + ".m\\.read." + gjson.Escape(bob.UserID)); !got.Exists() || got.Get("thread_id").Exists() {
				t.Errorf("bob's unthreaded receipt at b1 = %s, want one without thread_id", got.Raw)
			}
		})
	}
}

// TestThreadedReceiptRefusals: a thread_id the event is not in, an empty
// one, and a threaded m.fully_read are refused with M_INVALID_PARAM and
// change nothing.
func TestThreadedReceiptRefusals(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			root := alice.Send(room, "a", "root")
			other := alice.Send(room, "o", "other")
			reply := threadReply(alice, room, root, "reply")
			tests := []struct {
				name, typ, ev string
				body          map[string]any
			}{
				{"reply as main", "m.read", reply, map[string]any{"thread_id": "main"}},
				{"main event in a thread", "m.read", other, map[string]any{"thread_id": root}},
				{"reply in another thread", "m.read.private", reply, map[string]any{"thread_id": other}},
				{"empty thread_id", "m.read", reply, map[string]any{"thread_id": ""}},
				{"threaded fully_read", "m.fully_read", root, map[string]any{"thread_id": "main"}},
			}
			for _, tt := range tests {
				code, res := bob.Do("POST", receiptPath(room, tt.typ, tt.ev), tt.body)
				if code != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
					t.Errorf("%s: got %d %s, want 400 M_INVALID_PARAM", tt.name, code, res.Raw)
				}
			}
			r := hstest.Room(syncThreads(bob), "join", room)
			if got := r.Get("unread_notifications.notification_count").Int(); got != 2 {
				t.Errorf("main count after refusals = %d, want 2", got)
			}
			if got := r.Get("unread_thread_notifications." + gjson.Escape(root) + ".notification_count").Int(); got != 1 {
				t.Errorf("thread count after refusals = %d, want 1", got)
			}
			if got := r.Get(`ephemeral.events.#(type=="m.receipt")`); got.Exists() && gjson.Get(got.Raw, "content").String() != "{}" {
				if got.Get("content." + gjson.Escape(reply)).Exists() {
					t.Errorf("a refused receipt was stored: %s", got.Raw)
				}
			}
			// The root itself is in its thread and in the main timeline.
			for _, th := range []string{"main", root} {
				bob.MustDo("POST", receiptPath(room, "m.read", root), map[string]any{"thread_id": th})
			}
		})
	}
}
