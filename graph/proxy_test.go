package graph_test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// faultProxy stands between the Neo4j driver and Neo4j on 127.0.0.1:0 and
// forwards bytes both ways until it trips. Armed with a trigger, it trips
// when the client sends those bytes (a Cypher fragment), before forwarding
// them, so the fault lands inside a transaction. Tripped, it either drops
// every connection and refuses new ones (Neo4j gone), or keeps them open and
// forwards nothing (Neo4j stopped answering, the case that hangs clients
// without deadlines).
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	mode    proxyMode
	trigger []byte
	onTrip  proxyMode
	conns   map[net.Conn]struct{}
}

type proxyMode int

const (
	forwarding proxyMode = iota
	refusing             // connections are closed as soon as they open
	stalled              // connections stay open; nothing is forwarded
)

func startFaultProxy(t testing.TB, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// armTrip makes the proxy switch to mode when the client next sends trigger.
func (p *faultProxy) armTrip(trigger string, mode proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger, p.onTrip = []byte(trigger), mode
}

// restore drops every connection, as a network that heals does to the
// connections that lived through the fault, and forwards again.
func (p *faultProxy) restore() {
	p.mu.Lock()
	p.mode, p.trigger = forwarding, nil
	p.mu.Unlock()
	p.closeAll()
}

func (p *faultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case refusing:
			client.Close()
			continue
		case stalled:
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
func (p *faultProxy) pipe(src, dst net.Conn, watch bool) {
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
		case refusing:
			p.closeAll()
			return
		case stalled:
			continue // swallow it: the peer waits for an answer that never comes
		}
		if _, err := dst.Write(chunk); err != nil {
			return
		}
	}
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
}

func (p *faultProxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	for _, c := range conns {
		delete(p.conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *faultProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}
