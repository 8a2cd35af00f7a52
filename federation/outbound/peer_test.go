package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

// peer is a test homeserver's federation /send endpoint on loopback: it
// records what arrives and de-duplicates by transaction ID, as a real
// receiver does. It can fail (500) or hang.
type peer struct {
	srv *httptest.Server

	mu          sync.Mutex
	mode        string        // "ok", "fail" or "hang"; guarded by mu
	release     chan struct{} // closed to free hung requests
	seen        map[string]bool
	txns        []gotTxn // processed transactions, in order
	inflight    int
	maxInflight int

	// countOnly (set before use) makes the peer count PDUs instead of
	// keeping them, for benchmarks; count and reached are guarded by mu.
	countOnly bool
	count     int
	target    int
	reached   chan struct{} // closed when count reaches target
}

type gotTxn struct {
	ID   string
	PDUs []gjson.Result
	EDUs []gjson.Result
}

func newPeer(t testing.TB) *peer {
	p := &peer{mode: "ok", release: make(chan struct{}), seen: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.setMode("ok") // free hung requests
		p.srv.Close()
	})
	return p
}

func (p *peer) setMode(m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "hang" && m != "hang" {
		close(p.release)
		p.release = make(chan struct{})
	}
	p.mode = m
}

func (p *peer) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/_matrix/federation/v1/send/")
	if r.Method != http.MethodPut || !ok {
		http.Error(w, `{"errcode":"M_UNRECOGNIZED"}`, 404)
		return
	}
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.inflight++
	p.maxInflight = max(p.maxInflight, p.inflight)
	mode, release := p.mode, p.release
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	if mode == "hang" {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		p.mu.Lock()
		mode = p.mode
		p.mu.Unlock()
	}
	if mode == "fail" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"down for the test"}`))
		return
	}
	p.mu.Lock()
	if p.countOnly && !p.seen[id] {
		p.seen[id] = true
		p.count += int(gjson.GetBytes(body, "pdus.#").Int())
		if p.reached != nil && p.count >= p.target {
			close(p.reached)
			p.reached = nil
		}
	} else if !p.seen[id] {
		p.seen[id] = true
		doc := gjson.ParseBytes(body)
		p.txns = append(p.txns, gotTxn{ID: id, PDUs: doc.Get("pdus").Array(), EDUs: doc.Get("edus").Array()})
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"pdus":{}}`))
}

// got returns the processed transactions so far.
func (p *peer) got() []gotTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gotTxn(nil), p.txns...)
}

// bodies lists the m.room.message bodies received, in arrival order.
func (p *peer) bodies() []string {
	var out []string
	for _, txn := range p.got() {
		for _, pdu := range txn.PDUs {
			if pdu.Get("type").String() == "m.room.message" {
				out = append(out, pdu.Get("content.body").String())
			}
		}
	}
	return out
}

// pduKeys lists a stable key of every PDU received (its hashes), to catch
// duplicates.
func (p *peer) pduKeys() []string {
	var out []string
	for _, txn := range p.got() {
		for _, pdu := range txn.PDUs {
			out = append(out, pdu.Get("hashes.sha256").String())
		}
	}
	return out
}

func (p *peer) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// transport is a plain-HTTP outbound.Transport for tests: no signing, a
// fixed address per destination, and a log of every attempt.
type transport struct {
	client *http.Client

	mu       sync.Mutex
	addrs    map[string]string // destination -> base URL; guarded by mu
	attempts []attempt         // guarded by mu
}

type attempt struct {
	dest, txnID string
	at          time.Time
	err         error
}

func newTransport() *transport {
	return &transport{client: &http.Client{Timeout: 30 * time.Second}, addrs: map[string]string{}}
}

func (tr *transport) route(dest, base string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.addrs[dest] = base
}

func (tr *transport) SendTransaction(ctx context.Context, dest string, txn *outbound.Transaction) (outbound.Result, error) {
	tr.mu.Lock()
	base := tr.addrs[dest]
	tr.mu.Unlock()
	res, err := tr.send(ctx, base, txn)
	tr.mu.Lock()
	tr.attempts = append(tr.attempts, attempt{dest: dest, txnID: txn.ID, at: time.Now(), err: err})
	tr.mu.Unlock()
	return res, err
}

func (tr *transport) send(ctx context.Context, base string, txn *outbound.Transaction) (outbound.Result, error) {
	body, err := json.Marshal(txn)
	if err != nil {
		return outbound.Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/_matrix/federation/v1/send/"+url.PathEscape(txn.ID), bytes.NewReader(body))
	if err != nil {
		return outbound.Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.client.Do(req)
	if err != nil {
		return outbound.Result{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return outbound.Result{}, fmt.Errorf("send: %d %s", resp.StatusCode, raw)
	}
	var res outbound.Result
	gjson.GetBytes(raw, "pdus").ForEach(func(k, v gjson.Result) bool {
		if e := v.Get("error"); e.Exists() {
			if res.PDUErrors == nil {
				res.PDUErrors = map[string]string{}
			}
			res.PDUErrors[k.String()] = e.String()
		}
		return true
	})
	return res, nil
}

func (tr *transport) attemptsTo(dest string) []attempt {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []attempt
	for _, a := range tr.attempts {
		if a.dest == dest {
			out = append(out, a)
		}
	}
	return out
}

// deadAddr returns a loopback URL nothing listens on: a server that is down.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// startQueue starts the queue on srv (homeserver.StartOutbound: srv's
// store, fed by its writer, stopped with it) with test backoffs, and stops
// it when the test ends.
func startQueue(t testing.TB, srv *hstest.Server, tr outbound.Transport, mutate func(*outbound.Config)) *outbound.Queue {
	t.Helper()
	cfg := outbound.Config{Transport: tr, Logger: testLogger(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, SendTimeout: 10 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	q, err := srv.Srv.StartOutbound(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartOutbound: %v", err)
	}
	t.Cleanup(func() { stopQueue(t, q) })
	return q
}

func stopQueue(t testing.TB, q *outbound.Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func changeMember(t testing.TB, srv *hstest.Server, roomID, sender, target, membership string) {
	t.Helper()
	if _, err := srv.Srv.Rooms.ChangeMembership(context.Background(), rooms.MembershipRequest{
		RoomID: roomID, Sender: sender, Target: target, Membership: membership}); err != nil {
		t.Fatalf("%s %s in %s: %v", membership, target, roomID, err)
	}
}

// testLogger discards the queue's logs unless PARLEY_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
