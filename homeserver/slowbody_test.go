package homeserver_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// rawRequest writes a PUT's head with a Content-Length of n and returns the
// open connection, for trickling the body by hand.
func rawRequest(t *testing.T, srv *hstest.Server, token, path string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, token, n)
	return c
}

// TestStalledBodyIsCutOff sends a body's first byte and then nothing. With
// a 300 ms idle limit the server must give the connection up well within
// the test's 5 s wait; before, a stalled body held its connection for the
// 5-minute ReadTimeout.
func TestStalledBodyIsCutOff(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.HTTP.BodyIdleTimeoutMs = 300 }})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	c := rawRequest(t, srv, alice.Token, "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/t1", 100)
	if _, err := c.Write([]byte("{")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("stalled body answered %d, want an error or a closed connection", resp.StatusCode)
		}
		_, err = c.Read(make([]byte, 1))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open %v after the body stalled, want it closed after about 300 ms", time.Since(start))
	}
	// Nothing was sent.
	if got := alice.MessageBodies(room); len(got) != 0 {
		t.Errorf("room messages = %v, want none", got)
	}
}

// TestTrickledBodyWithinIdleIsServed: a body that keeps making progress,
// one byte each 50 ms (well inside a 400 ms idle limit) but 2 s in all, is
// read to the end and the request succeeds: the limit is on silence, not
// on total time.
func TestTrickledBodyWithinIdleIsServed(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.HTTP.BodyIdleTimeoutMs = 400 }})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	body := `{"msgtype":"m.text","body":"slow and steady, but alive"}`
	c := rawRequest(t, srv, alice.Token, "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/t1", len(body))
	tick := time.NewTicker(2 * time.Second / time.Duration(len(body)))
	defer tick.Stop()
	for i := range len(body) {
		<-tick.C
		if _, err := c.Write([]byte{body[i]}); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to the trickled request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("trickled request = %d, want 200", resp.StatusCode)
	}
}

// TestConnectionCapPerAddress opens connections from one address up to the
// cap; the next is closed at once, and a slot frees when one closes. Before,
// one address could open connections until the server ran out of file
// descriptors (1,100 stopped it). Loopback is exempt by default, so the test
// turns limit_loopback on.
func TestConnectionCapPerAddress(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) {
		c.HTTP.MaxConnsPerAddress = 3
		c.HTTP.LimitLoopback = true
	}})
	addr := strings.TrimPrefix(srv.URL, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// get sends one request on c and reports whether it was answered.
	get := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	held := []net.Conn{dial(), dial(), dial()}
	for i, c := range held {
		if !get(c) {
			t.Fatalf("connection %d under the cap was not served", i+1)
		}
	}
	if get(dial()) {
		t.Errorf("a 4th connection from the same address was served, want it closed (cap 3)")
	}
	held[0].Close()
	hstest.Eventually(t, "a slot frees after a connection closes", func() bool { return get(dial()) })
}
