package homeserver_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// recordingGateway is a push gateway on loopback that records every
// notification it accepts. Debian has no ntfy package here (apt-cache
// policy ntfy finds none), so the tests use this instead.
type recordingGateway struct {
	srv      *httptest.Server
	down     atomic.Bool  // answer 503 to everything
	inflight atomic.Int64 // requests being handled
	refused  atomic.Int64
	mu       sync.Mutex
	got      []gjson.Result      // guarded by mu: the "notification" of each accepted request
	reject   map[string]struct{} // guarded by mu: pushkeys answered as rejected
}

func newGateway(t *testing.T) *recordingGateway {
	g := &recordingGateway{reject: map[string]struct{}{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/push/v1/notify" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		g.inflight.Add(1)
		defer g.inflight.Add(-1)
		body, _ := io.ReadAll(r.Body)
		if g.down.Load() {
			g.refused.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		n := gjson.GetBytes(body, "notification")
		g.mu.Lock()
		g.got = append(g.got, n)
		var rejected []string
		for _, d := range n.Get("devices").Array() {
			if _, ok := g.reject[d.Get("pushkey").String()]; ok {
				rejected = append(rejected, fmt.Sprintf("%q", d.Get("pushkey").String()))
			}
		}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"rejected":[%s]}`, strings.Join(rejected, ","))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// quiesce cuts every connection and waits for the requests being handled
// to end: a request a stopped server abandoned is not answered later, when
// the gateway is up again, as if a new server had sent it.
func (g *recordingGateway) quiesce(t *testing.T) {
	g.srv.CloseClientConnections()
	hstest.Eventually(t, "the gateway idle", func() bool { return g.inflight.Load() == 0 })
}

func (g *recordingGateway) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

func (g *recordingGateway) notes() []gjson.Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gjson.Result(nil), g.got...)
}

// waitNotes waits until the gateway holds n notifications and returns them.
func (g *recordingGateway) waitNotes(t *testing.T, n int) []gjson.Result {
	t.Helper()
	hstest.Eventually(t, fmt.Sprintf("%d notifications at the gateway", n), func() bool { return len(g.notes()) >= n })
	return g.notes()
}

func pushOptions(st hstest.Store, dir string) hstest.Options {
	return hstest.Options{Store: st, DataDir: dir, Mutate: func(c *config.Config) {
		c.Push.AllowIPs = "127.0.0.0/8"
		c.Push.MinBackoffMs = 10
		c.Push.MaxBackoffMs = 100
	}}
}

func setPusher(c *hstest.Client, url, pushkey string, data map[string]any) (int, gjson.Result) {
	if data == nil {
		data = map[string]any{}
	}
	data["url"] = url
	return c.Do("POST", "/_matrix/client/v3/pushers/set", map[string]any{"kind": "http", "app_id": "im.parley.test",
		"pushkey": pushkey, "app_display_name": "Test", "device_display_name": "Phone", "lang": "en", "data": data})
}

func sendBody(c *hstest.Client, roomID, txn string, content map[string]any) string {
	return c.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/send/m.room.message/"+txn, content).Get("event_id").String()
}

// threeInRoom makes a room of alice, bob and carol (three members: plain
// messages notify without sound).
func threeInRoom(t *testing.T, srv *hstest.Server) (alice, bob, carol *hstest.Client, roomID string) {
	alice, bob, carol = srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	roomID = alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.Join(roomID)
	carol.Join(roomID)
	return
}

func TestPushersCRUD(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, pushOptions(st, ""))
			bob := srv.Register(t, "bob")
			bob2 := srv.Login(t, "bob")
			eve := srv.Register(t, "eve")
			gw := "https://push.example.org/_matrix/push/v1/notify"

			if st, res := setPusher(bob, gw, "key1", map[string]any{"format": "event_id_only"}); st != 200 {
				t.Fatalf("set pusher = %d %s, want 200", st, res.Raw)
			}
			list := bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Array()
			if len(list) != 1 || list[0].Get("pushkey").String() != "key1" || list[0].Get("kind").String() != "http" ||
				list[0].Get("data.url").String() != gw || list[0].Get("data.format").String() != "event_id_only" ||
				list[0].Get("app_id").String() != "im.parley.test" || list[0].Get("lang").String() != "en" {
				t.Fatalf("pushers = %v, want key1 with its data", list)
			}
			// The same app and key again replaces it.
			setPusher(bob, gw, "key1", map[string]any{"extra": 1})
			list = bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Array()
			if len(list) != 1 || list[0].Get("data.format").Exists() || list[0].Get("data.extra").Int() != 1 {
				t.Errorf("pushers after replace = %v, want one with the new data", list)
			}
			// Another user taking the same key removes bob's, unless append.
			setPusher(bob2, gw, "key2", nil)
			body := map[string]any{"kind": "http", "app_id": "im.parley.test", "pushkey": "key2", "app_display_name": "T",
				"device_display_name": "P", "lang": "en", "data": map[string]any{"url": gw}, "append": true}
			eve.MustDo("POST", "/_matrix/client/v3/pushers/set", body)
			if n := len(bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Array()); n != 2 {
				t.Errorf("bob's pushers after eve's append = %d, want 2", n)
			}
			setPusher(eve, gw, "key1", nil)
			if got := bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers.#.pushkey").String(); got != `["key2"]` {
				t.Errorf("bob's pushers after eve took key1 = %s, want [key2]", got)
			}
			// Deleting (kind null), also one that does not exist.
			for _, key := range []string{"key2", "nope"} {
				bob.MustDo("POST", "/_matrix/client/v3/pushers/set", map[string]any{"kind": nil, "app_id": "im.parley.test", "pushkey": key})
			}
			if got := bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Raw; got != "[]" {
				t.Errorf("bob's pushers after delete = %s, want []", got)
			}

			long := strings.Repeat("a", 65)
			for _, tc := range []struct {
				name   string
				body   map[string]any
				status int
				code   string
			}{
				{"no pushkey", map[string]any{"kind": "http", "app_id": "a"}, 400, "M_MISSING_PARAM"},
				{"unknown kind", pusherBody("sms", "a", map[string]any{"url": gw}), 400, "M_INVALID_PARAM"},
				{"no url", pusherBody("http", "a", map[string]any{}), 400, "M_MISSING_PARAM"},
				{"data not object", pusherBody("http", "a", []any{1}), 400, "M_BAD_JSON"},
				{"ftp url", pusherBody("http", "a", map[string]any{"url": "ftp://p.example/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
				{"wrong path", pusherBody("http", "a", map[string]any{"url": "https://p.example/notify"}), 400, "M_INVALID_PARAM"},
				{"not a url", pusherBody("http", "a", map[string]any{"url": "::nope"}), 400, "M_INVALID_PARAM"},
				{"url not string", pusherBody("http", "a", map[string]any{"url": 5}), 400, "M_BAD_JSON"},
				{"bad format", pusherBody("http", "a", map[string]any{"url": gw, "format": "full"}), 400, "M_INVALID_PARAM"},
				{"long app_id", map[string]any{"kind": "http", "app_id": long, "pushkey": "k", "app_display_name": "A",
					"device_display_name": "D", "lang": "en", "data": map[string]any{"url": gw}}, 400, "M_INVALID_PARAM"},
				{"no lang", map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A",
					"device_display_name": "D", "data": map[string]any{"url": gw}}, 400, "M_MISSING_PARAM"},
			} {
				status, res := bob.Do("POST", "/_matrix/client/v3/pushers/set", tc.body)
				if status != tc.status || res.Get("errcode").String() != tc.code {
					t.Errorf("%s: set pusher = %d %s, want %d %s", tc.name, status, res.Raw, tc.status, tc.code)
				}
			}
			if got := bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Raw; got != "[]" {
				t.Errorf("bob's pushers after refusals = %s, want []", got)
			}

			// A device's pushers go with it on logout; the other device's stay.
			setPusher(bob, gw, "from-bob", nil)
			setPusher(bob2, gw, "from-bob2", nil)
			bob2.MustDo("POST", "/_matrix/client/v3/logout", map[string]any{})
			if got := bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers.#.pushkey").String(); got != `["from-bob"]` {
				t.Errorf("bob's pushers after bob2's logout = %s, want [from-bob]", got)
			}
			// Deactivation removes them all.
			bob.MustDo("POST", "/_matrix/client/v3/account/deactivate", map[string]any{
				"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": "pw-bob"}})
			if n, err := srv.Srv.Store.Pushers(t.Context(), bob.UserID); err != nil || len(n) != 0 {
				t.Errorf("bob's stored pushers after deactivation = %v, %v, want none", n, err)
			}
		})
	}
}

func pusherBody(kind, key string, data any) map[string]any {
	return map[string]any{"kind": kind, "app_id": "im.parley.test", "pushkey": key, "app_display_name": "A",
		"device_display_name": "D", "lang": "en", "data": data}
}

func TestPushDelivery(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			srv := hstest.Start(t, pushOptions(st, ""))
			alice, bob, _, roomID := threeInRoom(t, srv)
			if st, res := setPusher(bob, gw.url(), "bobkey", map[string]any{"extra": "x"}); st != 200 {
				t.Fatalf("set pusher = %d %s", st, res.Raw)
			}
			ev1 := sendBody(alice, roomID, "t1", map[string]any{"msgtype": "m.text", "body": "hello"})
			sendBody(bob, roomID, "t2", map[string]any{"msgtype": "m.text", "body": "my own"}) // never pushed to bob
			ev3 := sendBody(alice, roomID, "t3", map[string]any{"msgtype": "m.text", "body": "hey bob",
				"m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
			notes := gw.waitNotes(t, 2)
			if len(notes) != 2 {
				t.Fatalf("gateway got %d notifications, want 2: %v", len(notes), notes)
			}
			n := notes[0]
			for path, want := range map[string]string{
				"event_id": ev1, "room_id": roomID, "type": "m.room.message", "sender": alice.UserID, "content.body": "hello",
				"prio": "low", "counts.unread": "1", "counts.missed_calls": "0", "devices.#": "1",
				"devices.0.app_id": "im.parley.test", "devices.0.pushkey": "bobkey", "devices.0.data.extra": "x",
				"devices.0.tweaks": "{}",
			} {
				if got := n.Get(path).String(); got != want {
					t.Errorf("first notification %s = %q, want %q", path, got, want)
				}
			}
			if n.Get("devices.0.data.url").Exists() || n.Get("devices.0.pushkey_ts").Int() <= 0 {
				t.Errorf("first notification devices = %s, want data without url and a pushkey_ts", n.Get("devices").Raw)
			}
			m := notes[1]
			if m.Get("event_id").String() != ev3 || m.Get("prio").String() != "high" || m.Get("counts.unread").Int() != 2 ||
				!m.Get("devices.0.tweaks.highlight").Bool() || m.Get("devices.0.tweaks.sound").String() != "default" {
				t.Errorf("mention notification = %s, want %s, prio high, unread 2, highlight and sound", m.Raw, ev3)
			}
			// Reading resets the count.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/receipt/m.read/"+hstest.Esc(ev3), map[string]any{})
			ev4 := sendBody(alice, roomID, "t4", map[string]any{"msgtype": "m.text", "body": "again"})
			notes = gw.waitNotes(t, 3)
			if got := notes[2]; got.Get("event_id").String() != ev4 || got.Get("counts.unread").Int() != 1 || len(notes) != 3 {
				t.Errorf("after the receipt: %d notifications, last %s; want 3, the last %s with unread 1", len(notes), got.Raw, ev4)
			}
		})
	}
}

func TestPushEventIDOnlyAndMutedRoom(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			srv := hstest.Start(t, pushOptions(st, ""))
			alice, bob, _, muted := threeInRoom(t, srv)
			dm := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID}, "is_direct": true})
			bob.Join(dm)
			setPusher(bob, gw.url(), "bobkey", map[string]any{"format": "event_id_only"})
			bob.MustDo("PUT", "/_matrix/client/v3/pushrules/global/room/"+hstest.Esc(muted), map[string]any{"actions": []string{"dont_notify"}})

			sendBody(alice, muted, "m1", map[string]any{"msgtype": "m.text", "body": "in the muted room"})
			ev := sendBody(alice, dm, "d1", map[string]any{"msgtype": "m.text", "body": "secret"})
			notes := gw.waitNotes(t, 1)
			if len(notes) != 1 {
				t.Fatalf("gateway got %d notifications, want 1 (the muted room's is not pushed): %v", len(notes), notes)
			}
			n := notes[0]
			if n.Get("event_id").String() != ev || n.Get("room_id").String() != dm || n.Get("content").Exists() ||
				n.Get("type").Exists() || n.Get("sender").Exists() || n.Get("counts.unread").Int() != 1 {
				t.Errorf("event_id_only notification = %s, want %s in %s without content, type or sender, unread 1 (muted room not counted)", n.Raw, ev, dm)
			}
			// A room of two: .m.rule.room_one_to_one sounds, so prio is high.
			if n.Get("prio").String() != "high" || n.Get("devices.0.tweaks.sound").String() != "default" || n.Get("devices.0.data.format").String() != "event_id_only" {
				t.Errorf("DM notification = %s, want prio high, sound default, data.format kept", n.Raw)
			}
		})
	}
}

func TestPushOutageThenRecovery(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			gw.down.Store(true)
			srv := hstest.Start(t, pushOptions(st, ""))
			alice, bob, _, roomID := threeInRoom(t, srv)
			setPusher(bob, gw.url(), "bobkey", nil)
			var want []string
			for i := range 5 {
				want = append(want, sendBody(alice, roomID, fmt.Sprint("o", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("m", i)}))
			}
			hstest.Eventually(t, "the gateway refused retries", func() bool { return gw.refused.Load() >= 3 })
			gw.down.Store(false)
			notes := gw.waitNotes(t, 5)
			hstest.Eventually(t, "the queue drained", func() bool { return srv.Srv.Push.Status().Queued == 0 })
			notes = gw.notes()
			var got []string
			for _, n := range notes {
				got = append(got, n.Get("event_id").String())
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("delivered %v, want each of %v once, in order", got, want)
			}
		})
	}
}

func TestPushQueueSurvivesRestart(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			gw.down.Store(true)
			dir := t.TempDir()
			srv := hstest.Start(t, pushOptions(st, dir))
			alice, bob, _, roomID := threeInRoom(t, srv)
			setPusher(bob, gw.url(), "bobkey", nil)
			var want []string
			for i := range 3 {
				want = append(want, sendBody(alice, roomID, fmt.Sprint("r", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("m", i)}))
			}
			hstest.Eventually(t, "3 notifications queued", func() bool {
				n, err := srv.Srv.Store.PushQueueLen(t.Context())
				return err == nil && n == 3
			})
			srv.Stop()
			gw.quiesce(t)
			gw.down.Store(false)
			srv = hstest.Start(t, pushOptions(st, dir))
			gw.waitNotes(t, 3)
			hstest.Eventually(t, "the queue drained", func() bool { return srv.Srv.Push.Status().Queued == 0 })
			var got []string
			for _, n := range gw.notes() {
				got = append(got, n.Get("event_id").String())
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("delivered after restart %v, want each of %v once, in order", got, want)
			}
		})
	}
}

func TestPushRejectedPushkeyRemovesPusher(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			gw.reject["deadkey"] = struct{}{}
			srv := hstest.Start(t, pushOptions(st, ""))
			alice, bob, _, roomID := threeInRoom(t, srv)
			setPusher(bob, gw.url(), "deadkey", nil)
			sendBody(alice, roomID, "x1", map[string]any{"msgtype": "m.text", "body": "one"})
			sendBody(alice, roomID, "x2", map[string]any{"msgtype": "m.text", "body": "two"})
			gw.waitNotes(t, 1)
			hstest.Eventually(t, "the rejected pusher removed", func() bool {
				return bob.MustDo("GET", "/_matrix/client/v3/pushers", nil).Get("pushers").Raw == "[]"
			})
			hstest.Eventually(t, "the queue emptied", func() bool {
				n, err := srv.Srv.Store.PushQueueLen(t.Context())
				return err == nil && n == 0
			})
			if n := len(gw.notes()); n > 2 {
				t.Errorf("gateway got %d notifications, want at most 2", n)
			}
		})
	}
}

// TestPushRefusesPrivateAddresses: without push.allow_ips, a pusher on
// loopback is stored (its name could resolve elsewhere later) but nothing
// is ever sent to it.
func TestPushRefusesPrivateAddresses(t *testing.T) {
	gw := newGateway(t)
	srv := hstest.Start(t, hstest.Options{Store: hstest.Store{Name: "sqlite"}, Mutate: func(c *config.Config) {
		c.Push.MinBackoffMs, c.Push.MaxBackoffMs = 10, 20
	}})
	alice, bob, _, roomID := threeInRoom(t, srv)
	setPusher(bob, gw.url(), "bobkey", nil)
	sendBody(alice, roomID, "s1", map[string]any{"msgtype": "m.text", "body": "one"})
	hstest.Eventually(t, "the notification queued", func() bool {
		n, err := srv.Srv.Store.PushQueueLen(t.Context())
		return err == nil && n == 1
	})
	hstest.Eventually(t, "several refused attempts", func() bool {
		return srv.Srv.Push.Stats().Failed >= 2
	})
	if n := len(gw.notes()); n != 0 || gw.refused.Load() != 0 {
		t.Errorf("gateway on loopback got %d notifications, %d attempts; want none", n, gw.refused.Load())
	}
}

// TestPushQueueBound: past push.max_queue a pusher's oldest notifications
// are dropped and counted; the newest are delivered when the gateway
// comes back.
func TestPushQueueBound(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			gw.down.Store(true)
			o := pushOptions(st, "")
			mutate := o.Mutate
			o.Mutate = func(c *config.Config) { mutate(c); c.Push.MaxQueue = 2 }
			srv := hstest.Start(t, o)
			alice, bob, _, roomID := threeInRoom(t, srv)
			setPusher(bob, gw.url(), "bobkey", nil)
			var sent []string
			for i := range 5 {
				sent = append(sent, sendBody(alice, roomID, fmt.Sprint("b", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("m", i)}))
			}
			hstest.Eventually(t, "3 notifications dropped", func() bool { return srv.Srv.Push.Stats().Dropped == 3 })
			if n, err := srv.Srv.Store.PushQueueLen(t.Context()); err != nil || n != 2 {
				t.Errorf("queue length = %d, %v; want 2", n, err)
			}
			gw.down.Store(false)
			hstest.Eventually(t, "the newest two delivered", func() bool {
				got := map[string]bool{}
				for _, n := range gw.notes() {
					got[n.Get("event_id").String()] = true
				}
				return got[sent[3]] && got[sent[4]]
			})
			hstest.Eventually(t, "the queue drained", func() bool { return srv.Srv.Push.Status().Queued == 0 })
			seen := map[string]int{}
			for _, n := range gw.notes() {
				seen[n.Get("event_id").String()]++
			}
			// One of the dropped rows may have been in flight when the
			// gateway came back; none is sent twice.
			if len(seen) > 3 {
				t.Errorf("delivered %v, want the newest two (and at most one dropped one in flight) of %v", seen, sent)
			}
			for id, c := range seen {
				if c > 1 {
					t.Errorf("%s delivered %d times, want once", id, c)
				}
			}
		})
	}
}

// TestPushMetricsExposed: the push counters are in the admin metrics.
func TestPushMetricsExposed(t *testing.T) {
	w := newDeskShop(t, hstest.Options{}, "shop", map[string]any{"name": "Acme", "strategy": "round_robin", "capacity": 4})
	code, body := deskMetrics(t, w.boss)
	if code != 200 {
		t.Fatalf("GET metrics = %d, want 200", code)
	}
	for _, name := range []string{"parley_push_sent_total 0", "parley_push_failed_attempts_total", "parley_push_abandoned_total",
		"parley_push_pushers_rejected_total", "parley_push_dropped_total", "parley_push_queued 0"} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
}
