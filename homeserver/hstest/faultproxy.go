package hstest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy stands between a client (the Neo4j driver) and its server on
// 127.0.0.1:0 and forwards bytes both ways until it trips or is cut. Armed with a trigger, it trips
// when the client sends those bytes (a Cypher fragment), before Forwarding
// them, so the fault lands inside a transaction. Tripped, it either drops
// every connection and refuses new ones (Neo4j gone), or keeps them open and
// forwards nothing (Neo4j stopped answering, the case that hangs clients
// without deadlines).
type FaultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	mode    ProxyMode
	trigger []byte
	onTrip  ProxyMode
	conns   map[net.Conn]struct{}
}

// ProxyMode is what a FaultProxy does with traffic.
type ProxyMode int

const (
	Forwarding ProxyMode = iota
	Refusing             // connections are closed as soon as they open
	Stalled              // connections stay open; nothing is forwarded
)

// StartFaultProxy forwards to target until the test ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// ArmTrip makes the proxy switch to mode when the client next sends trigger.
func (p *FaultProxy) ArmTrip(trigger string, mode ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger, p.onTrip = []byte(trigger), mode
}

// Cut drops every connection and refuses new ones: the server is gone.
func (p *FaultProxy) Cut() {
	p.mu.Lock()
	p.mode, p.trigger = Refusing, nil
	p.mu.Unlock()
	p.closeAll()
}

// Restore drops every connection, as a network that heals does to the
// connections that lived through the fault, and forwards again.
func (p *FaultProxy) Restore() {
	p.mu.Lock()
	p.mode, p.trigger = Forwarding, nil
	p.mu.Unlock()
	p.closeAll()
}

func (p *FaultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case Refusing:
			client.Close()
			continue
		case Stalled:
			p.track(client)
			p.wg.Go(func() { io.Copy(io.Discard, client) })
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		p.wg.Go(func() { p.pipe(server, client, false) })
		p.wg.Go(func() { p.pipe(client, server, true) })
	}
}

// pipe copies src to dst. Client bytes (watch) are checked for the trigger,
// with the tail of the previous read kept so a trigger split across two
// reads is still seen.
func (p *FaultProxy) pipe(src, dst net.Conn, watch bool) {
	defer p.drop(src, dst)
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		chunk := buf[:n]
		p.mu.Lock()
		if watch && p.trigger != nil && bytes.Contains(append(tail, chunk...), p.trigger) {
			p.mode, p.trigger = p.onTrip, nil
		}
		if watch && len(p.trigger) > 1 {
			tail = append(tail[:0], chunk[max(0, n-len(p.trigger)+1):]...)
		}
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case Refusing:
			p.closeAll()
			return
		case Stalled:
			continue // swallow it: the peer waits for an answer that never comes
		}
		if _, err := dst.Write(chunk); err != nil {
			return
		}
	}
}

func (p *FaultProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
}

func (p *FaultProxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	for _, c := range conns {
		delete(p.conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *FaultProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// StartFaultProxyOn is StartFaultProxy listening on addr (e.g.
// "127.0.0.2:0"), so that a federating server can be named after the proxy
// and every other server reaches it through the proxy: cutting it
// partitions that server off.
func StartFaultProxyOn(t testing.TB, addr, target string) *FaultProxy {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}
