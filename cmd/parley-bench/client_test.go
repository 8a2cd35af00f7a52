package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func TestSharedSecretMAC(t *testing.T) {
	// Expected values from Python: hmac.new(b"s3cret", b"nonce1\0alice\0pw\0notadmin", sha1).
	tests := []struct {
		admin bool
		want  string
	}{
		{false, "6023c603b24ac9db1da100fc0d8e666dabeff9cf"},
		{true, "a73f2a080cbe3861838f48abb94784b65bed43cd"},
	}
	for _, tt := range tests {
		if got := sharedSecretMAC("s3cret", "nonce1", "alice", "pw", tt.admin); got != tt.want {
			t.Errorf("sharedSecretMAC(admin=%v) = %s, want %s", tt.admin, got, tt.want)
		}
	}
}

// fakeSynapse serves the shared-secret registration the way Synapse does.
func fakeSynapse(t *testing.T, secret string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_synapse/admin/v1/register" {
			http.NotFound(w, r)
			return
		}
		if r.Method == "GET" {
			w.Write([]byte(`{"nonce":"n-123"}`))
			return
		}
		var req struct{ Nonce, Username, Password, Mac string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Nonce != "n-123" || req.Mac != sharedSecretMAC(secret, req.Nonce, req.Username, req.Password, false) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"HMAC incorrect"}`))
			return
		}
		w.Write([]byte(`{"user_id":"@` + req.Username + `:test","access_token":"tok","device_id":"D"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRegisterShared(t *testing.T) {
	srv := fakeSynapse(t, "right")
	c := newClient(srv.URL, "offline", 4, 5*time.Second, time.Second)
	defer c.close()
	u, err := c.registerShared(context.Background(), "right", "bob", "pw")
	if err != nil || u.id != "@bob:test" || u.token != "tok" {
		t.Errorf("registerShared(right secret) = %+v, %v; want @bob:test with a token", u, err)
	}
	if _, err := c.registerShared(context.Background(), "wrong", "bob", "pw"); err == nil || !strings.Contains(err.Error(), "M_FORBIDDEN") {
		t.Errorf("registerShared(wrong secret) = %v, want M_FORBIDDEN", err)
	}
}

// TestRegisterOpenFollowsUIAAndWaitsOut429 checks the two-step dummy flow
// and that a rate-limited setup call is retried after retry_after_ms.
func TestRegisterOpenFollowsUIAAndWaitsOut429(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := gjson.Parse(readAll(r))
		switch n := calls.Add(1); {
		case n == 1:
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":20}`))
		case !body.Get("auth").Exists():
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"flows":[{"stages":["m.login.dummy"]}],"session":"S1"}`))
		case body.Get("auth.type").String() == "m.login.dummy" && body.Get("auth.session").String() == "S1":
			w.Write([]byte(`{"user_id":"@carol:test","access_token":"t2","device_id":"D"}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"errcode":"M_BAD_JSON"}`))
		}
	}))
	defer srv.Close()
	c := newClient(srv.URL, "offline", 4, 5*time.Second, time.Second)
	defer c.close()
	u, err := c.registerOpen(context.Background(), "carol", "pw")
	if err != nil || u.id != "@carol:test" || u.token != "t2" {
		t.Fatalf("registerOpen = %+v, %v; want @carol:test", u, err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("registerOpen made %d calls, want 3 (429, challenge, dummy)", got)
	}
}

func readAll(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestMessageBodyRoundTrip(t *testing.T) {
	sent := time.UnixMicro(1_780_000_000_123_456)
	body := messageBody(42, sent)
	if !json.Valid(body) {
		t.Fatalf("messageBody = %s, not JSON", body)
	}
	sync := `{"next_batch":"s9","rooms":{"join":{"!a:x":{"timeline":{"events":[
		{"type":"m.room.member","content":{"membership":"join"}},
		{"type":"m.room.message","content":` + string(body) + `},
		{"type":"m.room.message","content":{"msgtype":"m.text","body":"not ours","parley_bench_id":"x"}}]}},
		"!b:x":{"timeline":{"limited":true,"events":[{"type":"m.room.message","content":` + string(messageBody(43, sent)) + `}]}}}}}`
	var got []uint64
	next, limited := eachBenchMessage([]byte(sync), func(id uint64, sentUS int64) {
		if sentUS != sent.UnixMicro() {
			t.Errorf("message %d sent at %d, want %d", id, sentUS, sent.UnixMicro())
		}
		got = append(got, id)
	})
	if next != "s9" || limited != 1 || len(got) != 2 || got[0]+got[1] != 85 {
		t.Errorf("eachBenchMessage = %v, next %q, %d limited; want ids 42 and 43, next s9, 1 limited", got, next, limited)
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine("register", 200, 50, 1500*time.Millisecond, func() string { return "ok" })
	want := "register       [#######.......................]  25%  50/200  1.5s  ok"
	if got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if got := progressLine("x", 0, 5, 0, nil); !strings.Contains(got, "  0%") {
		t.Errorf("progressLine with no total = %q, want 0%%", got)
	}
}

// TestBenchPostRoundTrip: a channel post's text carries the bench message
// ID and send time back, and other texts are not bench posts.
func TestBenchPostRoundTrip(t *testing.T) {
	sent := time.UnixMicro(1_796_000_000_123_456)
	text := gjson.GetBytes(postBody(42, sent), "text").String()
	if id, us, ok := parseBenchPost(text); !ok || id != 42 || us != sent.UnixMicro() {
		t.Errorf("parseBenchPost(%q) = %d, %d, %v; want 42, %d, true", text, id, us, ok, sent.UnixMicro())
	}
	for _, bad := range []string{"", "hello", "parley-bench", "parley-bench 42", "parley-bench x 1", "parley-bench 1 y", "parley-bench -1 5"} {
		if _, _, ok := parseBenchPost(bad); ok {
			t.Errorf("parseBenchPost(%q) ok, want not a bench post", bad)
		}
	}
}
