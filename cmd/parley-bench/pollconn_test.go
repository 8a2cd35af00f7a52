package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPollConn: the poller's own HTTP/1.1 client reads sized, chunked and
// error answers, reuses its connection, and follows Connection: close.
func TestPollConn(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	connCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q, want Bearer tok", got)
		}
		switch r.URL.Query().Get("kind") {
		case "sized":
			w.Header().Set("Content-Length", "13")
			w.Write([]byte(`{"next":"s1"}`))
		case "chunked":
			w.Write([]byte(`{"next":`))
			w.(http.Flusher).Flush() // no length known: chunked
			w.Write([]byte(`"s2"}`))
		case "close":
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{}`))
		default:
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":250}`))
		}
	}))
	defer srv.Close()
	pc := newPollConn(srv.URL)
	if pc == nil {
		t.Fatalf("newPollConn(%q) = nil, want a connection", srv.URL)
	}
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []struct{ kind, want string }{{"sized", `{"next":"s1"}`}, {"chunked", `{"next":"s2"}`}, {"sized", `{"next":"s1"}`}} {
		body, err := pc.poll(ctx, []byte("/sync?kind="+c.kind), "tok", deadline)
		if err != nil || string(body) != c.want {
			t.Errorf("poll %s = %q, %v; want %q", c.kind, body, err, c.want)
		}
	}
	if n := connCount(); n != 1 {
		t.Errorf("connections used for three keep-alive polls = %d, want 1", n)
	}
	_, err := pc.poll(ctx, []byte("/sync?kind=error"), "tok", deadline)
	var se *statusError
	if !errors.As(err, &se) || se.Status != 429 || se.Errcode != "M_LIMIT_EXCEEDED" || se.RetryAfter != 250*time.Millisecond {
		t.Errorf("poll of a 429 = %v, want a statusError 429 M_LIMIT_EXCEEDED 250ms", err)
	}
	if _, err := pc.poll(ctx, []byte("/sync?kind=close"), "tok", deadline); err != nil || pc.conn != nil {
		t.Errorf("poll with Connection: close = %v, conn kept %v; want no error and the connection dropped", err, pc.conn != nil)
	}
	if _, err := pc.poll(ctx, []byte("/sync?kind=sized"), "tok", deadline); err != nil || connCount() != 2 {
		t.Errorf("poll after a close = %v with %d connections, want a new (second) connection", err, connCount())
	}
	if newPollConn("https://127.0.0.1:1") != nil {
		t.Errorf("newPollConn(https) is not nil, want nil (net/http serves TLS targets)")
	}
}

// TestPollConnCancel: cancelling a poller's context ends a poll the
// server holds.
func TestPollConnCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	pc := newPollConn(srv.URL)
	done := make(chan error, 1)
	go func() {
		_, err := pc.poll(ctx, []byte("/sync"), "tok", time.Now().Add(time.Minute))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled poll = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("cancelled poll still blocked after 10s")
	}
}

// FuzzReadHead: any bytes give an answer head or an error, never a panic,
// and a well-formed head's length comes back.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.1 2x0\r\n\r\n", "HTTP/1.1 200 OK\r\nbad\r\n\r\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		status, length, _, _, err := readHead(bufio.NewReaderSize(strings.NewReader(s), 64))
		if err == nil && (status < 0 || status > 999 || length < -1) {
			t.Errorf("readHead(%q) = status %d, length %d", s, status, length)
		}
	})
}
