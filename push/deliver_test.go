package push

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

func TestParseRejected(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"rejected":[]}`, nil},
		{`{"rejected":["a","b"]}`, []string{"a", "b"}},
		{`{"rejected":["a",1,null,{"x":1}]}`, []string{"a"}},
		{`{"rejected":"a"}`, nil},
		{`{}`, nil},
		{``, nil},
		{`not json`, nil},
		{`{"rejected":["a"`, nil},
	} {
		if got := ParseRejected([]byte(tc.body)); !slices.Equal(got, tc.want) {
			t.Errorf("ParseRejected(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func FuzzParseRejected(f *testing.F) {
	f.Add([]byte(`{"rejected":["k"]}`))
	f.Add([]byte(`{"rejected":[1,"\u0000"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, k := range ParseRejected(body) {
			_ = k // never panics; every key came from a JSON string
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{4, 0.5, 8 * time.Second},
		{30, 0.5, time.Minute},
		{30, 0, 30 * time.Second},
		{1, 0.999, 1499 * time.Millisecond},
	} {
		if got := backoff(tc.n, time.Second, time.Minute, tc.r); got != tc.want {
			t.Errorf("backoff(%d, 1s, 1m, %v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
}

// TestGuardedClient: the delivery client refuses loopback unless allowed,
// and does not follow redirects.
func TestGuardedClient(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer gw.Close()
	ctx := context.Background()
	post := func(c *http.Client, path string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+path, strings.NewReader("{}"))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if _, err := post(guardedClient(nil, 5*time.Second), "/"); !errors.Is(err, errDenied) {
		t.Errorf("POST to loopback without allow_ips: err = %v, want %v", err, errDenied)
	}
	allowed := guardedClient([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 5*time.Second)
	if st, err := post(allowed, "/"); err != nil || st != 200 {
		t.Errorf("POST to loopback with 127.0.0.0/8 allowed = %d, %v, want 200", st, err)
	}
	if st, err := post(allowed, "/redirect"); err != nil || st != http.StatusFound {
		t.Errorf("POST to a redirect = %d, %v, want the 302 itself", st, err)
	}
}

func TestNotificationBody(t *testing.T) {
	next := storage.PushNext{
		Item:   storage.PushItem{PusherID: 1, Seq: 1, EventID: "$e", RoomID: "!r:x", High: true, Tweaks: `{"sound":"default"}`, Unread: 3},
		Pusher: storage.Pusher{AppID: "app", PushKey: "key", PushKeyTS: 1_700_000_000_123, Data: `{"url":"https://p/_matrix/push/v1/notify","x":1}`},
		Event:  []byte(`{"type":"m.room.message","sender":"@a:x","content":{"body":"hi"},"event_id":"$e"}`),
	}
	body, err := notificationBody(&next)
	if err != nil {
		t.Fatal(err)
	}
	n := gjson.GetBytes(body, "notification")
	for path, want := range map[string]string{"event_id": "$e", "room_id": "!r:x", "type": "m.room.message", "sender": "@a:x",
		"content.body": "hi", "prio": "high", "counts.unread": "3", "counts.missed_calls": "0", "devices.0.app_id": "app",
		"devices.0.pushkey": "key", "devices.0.pushkey_ts": "1700000000", "devices.0.data": `{"x":1}`,
		"devices.0.tweaks.sound": "default"} {
		if got := n.Get(path).String(); got != want {
			t.Errorf("notification %s = %q, want %q", path, got, want)
		}
	}
	next.Pusher.Data = `{"url":"https://p/_matrix/push/v1/notify","format":"event_id_only"}`
	next.Item.High = false
	body, _ = notificationBody(&next)
	n = gjson.GetBytes(body, "notification")
	if n.Get("content").Exists() || n.Get("type").Exists() || n.Get("sender").Exists() || n.Get("prio").String() != "low" ||
		n.Get("devices.0.data.format").String() != "event_id_only" {
		t.Errorf("event_id_only notification = %s, want no content, type or sender, prio low, format kept", n.Raw)
	}
}
