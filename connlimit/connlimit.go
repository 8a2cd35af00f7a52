// Package connlimit caps the connections one client address may hold open,
// so that one address (or one IPv6 /64) cannot use up the server's file
// descriptors with idle or trickling connections. It wraps a net.Listener:
// a connection over the cap is closed as soon as it is accepted, before
// any byte is read.
//
// Behind a reverse proxy every client arrives from the proxy's address, so
// a per-address cap there would cap everyone together; loopback is exempt
// unless configured otherwise, and the proxy should cap instead.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener that admits at most Max open connections per
// client address.
type Listener struct {
	net.Listener
	// Static after New.
	max           int
	limitLoopback bool

	mu   sync.Mutex
	open map[netip.Addr]int // open connections per address key; guarded by mu

	refused atomic.Int64
}

// New wraps ln. max <= 0 means no cap. With limitLoopback false, loopback
// clients are never capped.
func New(ln net.Listener, max int, limitLoopback bool) *Listener {
	return &Listener{Listener: ln, max: max, limitLoopback: limitLoopback, open: map[netip.Addr]int{}}
}

// Accept returns the next connection whose address is under the cap, and
// closes those over it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, capped := l.key(c.RemoteAddr())
		if !capped {
			return c, nil
		}
		if l.admit(key) {
			return &conn{Conn: c, l: l, key: key}, nil
		}
		l.refused.Add(1)
		c.Close()
	}
}

// Refused reports how many connections were closed for being over the cap.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Open reports the open connections counted for addr's key, for tests.
func (l *Listener) Open(addr netip.Addr) int {
	key, _ := keyOf(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[key]
}

// key returns the address key of a remote address, and whether it is capped.
func (l *Listener) key(a net.Addr) (netip.Addr, bool) {
	if l.max <= 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false // not IP (a Unix socket): nothing to key on
	}
	key, loopback := keyOf(ap.Addr())
	return key, !loopback || l.limitLoopback
}

// keyOf groups IPv6 clients by /64, the block one subscriber usually holds,
// so rotating addresses within it does not escape the cap.
func keyOf(addr netip.Addr) (netip.Addr, bool) {
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return addr, true
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	return addr, false
}

func (l *Listener) admit(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	l.open[key]++
	return true
}

func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[key] - 1; n > 0 {
		l.open[key] = n
	} else {
		delete(l.open, key) // keep the map to addresses with open connections
	}
}

// conn gives its address's slot back when closed, once.
type conn struct {
	net.Conn
	l      *Listener
	key    netip.Addr
	closed atomic.Bool
}

func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.key)
	}
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close as on a bare TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
