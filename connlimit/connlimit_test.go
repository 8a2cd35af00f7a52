package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestCapPerAddress(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(raw, 2, true)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	over := dial()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Errorf("read on the third connection: %v, want EOF (closed by the cap)", err)
	}
	if got := ln.Refused(); got != 1 {
		t.Errorf("Refused() = %d, want 1", got)
	}
	first.Close()
	first.Close() // a second Close must not give back a second slot
	if got := ln.Open(netip.MustParseAddr("127.0.0.1")); got != 1 {
		t.Errorf("open after one Close (twice) = %d, want 1", got)
	}
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection admitted after one closed")
	}
	second.Close()
	if got := ln.Open(netip.MustParseAddr("127.0.0.1")); got != 0 {
		t.Errorf("open after all closed = %d, want 0", got)
	}
}

// isReset reports a connection reset, which a client may see instead of
// EOF when the server closes before reading what the client sent.
func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func TestLoopbackExemptAndKeys(t *testing.T) {
	l := New(nil, 1, false)
	cases := []struct {
		addr   string
		key    string
		capped bool
	}{
		{"127.0.0.1:5", "127.0.0.1", false},
		{"[::1]:5", "::1", false},
		{"203.0.113.4:80", "203.0.113.4", true},
		{"[::ffff:203.0.113.4]:80", "203.0.113.4", true},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::", true},
	}
	for _, c := range cases {
		key, capped := l.key(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.addr)))
		if key.String() != c.key && capped || capped != c.capped {
			t.Errorf("key(%s) = %s, %v; want %s, %v", c.addr, key, capped, c.key, c.capped)
		}
	}
}
