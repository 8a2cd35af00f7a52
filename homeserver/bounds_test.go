package homeserver_test

// Resource-bound tests: whatever clients do — hold thousands of long-polls,
// vanish mid-request, reconnect all at once, send oversized or deeply nested
// bodies, flood the login endpoint — the server's goroutines, heap and
// reads stay bounded, and delivery to everyone else carries on.
//
// The helpers here are prefixed bnd so that they do not collide with the
// package's other tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// bndClient is a raw HTTP client whose transport the test owns, so that it
// can hold thousands of connections at once and close them all at the end
// (the client side's goroutines must not count as the server's). Its methods
// return errors rather than failing the test, so any goroutine may call them.
type bndClient struct {
	base string
	tr   *http.Transport
	hc   *http.Client
}

func newBndClient(base string, conns int) *bndClient {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxConnsPerHost:       conns,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       time.Minute,
		ExpectContinueTimeout: 10 * time.Second, // longer than any row's deadline: only the server's answer ends the wait
		DisableCompression:    true,
	}
	return &bndClient{base: base, tr: tr, hc: &http.Client{Transport: tr}}
}

// do sends one request. body is nil, raw []byte, or a value to marshal.
func (c *bndClient) do(ctx context.Context, method, path, token string, body any, hdr http.Header) (int, gjson.Result, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, gjson.Result{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, gjson.Result{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

// send runs req and reads the whole answer, so the connection can be reused.
func (c *bndClient) send(req *http.Request) (int, gjson.Result, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, gjson.Result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, gjson.Result{}, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, gjson.ParseBytes(raw), nil
}

// close drops the client's idle connections; in-flight ones close when
// their requests end.
func (c *bndClient) close() { c.tr.CloseIdleConnections() }

// login logs in a new device of name (hstest's password convention) and
// returns its access token.
func (c *bndClient) login(ctx context.Context, name string) (string, error) {
	st, res, err := c.do(ctx, "POST", "/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": name}, "password": "pw-" + name,
	}, nil)
	if err != nil {
		return "", err
	}
	if st != 200 {
		return "", fmt.Errorf("login %s = %d %s", name, st, res.Raw)
	}
	return res.Get("access_token").String(), nil
}

func bndSyncPath(since string, timeoutMs int) string {
	p := "/_matrix/client/v3/sync?timeout=" + strconv.Itoa(timeoutMs)
	if since != "" {
		p += "&since=" + url.QueryEscape(since)
	}
	return p
}

// bndEach runs f(i) for i in [0, n) on workers goroutines and returns the
// first error; all workers have ended when it returns.
func bndEach(n, workers int, f func(i int) error) error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bndStacks counts the goroutines whose stack contains fn, from the
// aggregated goroutine profile. The server runs in this process, so this is
// how a test sees, for example, how many long-polls are parked in the
// notifier right now.
func bndStacks(fn string) int {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return -1
	}
	total, count, counted := 0, 0, false
	for line := range strings.Lines(buf.String()) {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "@" {
			if n, err := strconv.Atoi(f[0]); err == nil {
				count, counted = n, false
				continue
			}
		}
		if !counted && strings.Contains(line, fn) {
			total += count
			counted = true
		}
	}
	return total
}

// bndParked is how many /sync requests wait in the notifier.
func bndParked() int { return bndStacks("inbox.(*Notifier).Wait") }

// bndPoll checks cond every interval until it holds or ctx ends, and
// reports whether it held.
func bndPoll(ctx context.Context, every time.Duration, cond func() bool) bool {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// bndHeap is the live heap after two collections (the second frees what
// the first's finalizers released, and sync.Pools are emptied).
func bndHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// bndSettle waits until the goroutine count stops moving (the same for ten
// samples 20 ms apart, or 10 s pass) and returns it: connections closed a
// moment ago take a little while to wind down on both ends.
func bndSettle() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last, same := runtime.NumGoroutine(), 0
	bndPoll(ctx, 20*time.Millisecond, func() bool {
		n := runtime.NumGoroutine()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		return same >= 10
	})
	return last
}

func bndMiB(b uint64) float64 { return float64(b) / (1 << 20) }

func bndHasBody(sync gjson.Result, room, body string) bool {
	return slices.Contains(hstest.Bodies(sync, room), body)
}

// bndCloseIdle closes the idle connections of every client this process
// used against the server: the test's own and hstest's (http.DefaultTransport).
func bndCloseIdle(cl *bndClient) {
	cl.close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

const (
	bndUsers   = 100
	bndDevices = 20 // per user: bndUsers*bndDevices = 2,000 long-polls at once
)

// TestLongPollsAndVanishingClientsLeaveNoLeak holds 2,000 long-polls at
// once (100 users × 20 devices); half the clients vanish mid-request
// (their requests are cancelled, which closes the connection), the other
// half are woken by a send; then 1,000 clients reconnect at once with since
// tokens (half behind, answered at once; half current, held until another
// send). Afterwards the process's goroutines and live heap must be back near
// where they were before the first long-poll.
func TestLongPollsAndVanishingClientsLeaveNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 2,000 long-polls")
	}
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) { bndLongPollLeak(t, store) })
	}
}

func bndLongPollLeak(t *testing.T, store hstest.Store) {
	const (
		n               = bndUsers * bndDevices
		goroutineMargin = 20
		heapMargin      = 16 << 20
		pollMs          = 60000 // the server's cap: only a wake, a cancel or the test's end answers these
	)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv := hstest.Start(t, hstest.Options{Store: store})
	cl := newBndClient(srv.URL, 2*n)
	defer cl.close()

	// Users and devices. Logins are cheap here (hstest's argon2 is 64 KiB).
	setup := time.Now()
	waker := srv.Register(t, "waker")
	room := waker.CreateRoom(map[string]any{"preset": "public_chat"})
	names := make([]string, bndUsers)
	tokens := make([][]string, bndUsers)
	for u := range names {
		names[u] = fmt.Sprintf("lp%03d", u)
		c := srv.Register(t, names[u])
		c.Join(room)
		tokens[u] = make([]string, bndDevices)
		tokens[u][0] = c.Token
	}
	if err := bndEach(bndUsers*(bndDevices-1), 8, func(i int) error {
		u, d := i/(bndDevices-1), 1+i%(bndDevices-1)
		tok, err := cl.login(ctx, names[u])
		tokens[u][d] = tok
		return err
	}); err != nil {
		t.Fatalf("logging in devices: %v", err)
	}
	// One initial sync per user marks everyone online (a presence change
	// is a write that wakes every room peer); after that nothing changes
	// until the test sends, so one token T fits every device.
	if err := bndEach(bndUsers, 8, func(u int) error {
		st, res, err := cl.do(ctx, "GET", bndSyncPath("", 0), tokens[u][0], nil, nil)
		if err == nil && st != 200 {
			err = fmt.Errorf("initial sync %s = %d %s", names[u], st, res.Raw)
		}
		return err
	}); err != nil {
		t.Fatalf("initial syncs: %v", err)
	}
	since := srv.Login(t, names[0]).Sync("", 0).Get("next_batch").String()
	// Every device syncs once (timeout 0), which also fills the server's
	// access-token cache the way a running deployment has it full.
	if err := bndEach(n, 8, func(i int) error {
		st, res, err := cl.do(ctx, "GET", bndSyncPath(since, 0), tokens[i/bndDevices][i%bndDevices], nil, nil)
		if err == nil && st != 200 {
			err = fmt.Errorf("warm-up sync = %d %s", st, res.Raw)
		}
		return err
	}); err != nil {
		t.Fatalf("warm-up syncs: %v", err)
	}
	t.Logf("setup: %d users, %d devices in %v", bndUsers, n, time.Since(setup).Round(time.Millisecond))

	// Baseline: server up, users and devices exist, no client connection open.
	bndCloseIdle(cl)
	baseG := bndSettle()
	baseHeap := bndHeap()

	type result struct {
		status int
		body   gjson.Result
		err    error
	}
	results := make([]result, n)
	cancels := make([]context.CancelFunc, n)
	var vanishing, woken sync.WaitGroup
	defer func() { // every poll ends, whatever happens
		for _, c := range cancels {
			if c != nil {
				c()
			}
		}
		vanishing.Wait()
		woken.Wait()
	}()
	// Devices 0..9 of every user vanish, devices 10..19 are woken.
	vanishes := func(i int) bool { return i%bndDevices < bndDevices/2 }
	phase := time.Now()
	var took []string // phase durations, for the log
	lap := func(what string) {
		took = append(took, fmt.Sprintf("%s %v", what, time.Since(phase).Round(time.Millisecond)))
		phase = time.Now()
	}
	for i := range n {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
		cancels[i] = pcancel
		wg := &woken
		if vanishes(i) {
			wg = &vanishing
		}
		wg.Go(func() {
			st, body, err := cl.do(pctx, "GET", bndSyncPath(since, pollMs), tokens[i/bndDevices][i%bndDevices], nil, nil)
			results[i] = result{st, body, err}
		})
	}
	pollCtx, pollCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer pollCancel()
	if !bndPoll(pollCtx, 50*time.Millisecond, func() bool { return bndParked() >= n }) {
		t.Fatalf("only %d of %d long-polls parked in the notifier", bndParked(), n)
	}
	lap("all parked")
	heldG := runtime.NumGoroutine()
	heldHeap := bndHeap()
	phase = time.Now()

	// Half the clients vanish: their requests are cancelled, which closes
	// their connections. The server must let go of each before any news.
	for i := range n {
		if vanishes(i) {
			cancels[i]()
		}
	}
	vanishing.Wait()
	for i := range n {
		if vanishes(i) && !errors.Is(results[i].err, context.Canceled) {
			t.Errorf("vanished poll %d = %d %v, want context.Canceled", i, results[i].status, results[i].err)
			break
		}
	}
	if !bndPoll(pollCtx, 50*time.Millisecond, func() bool { return bndParked() == n/2 }) {
		t.Fatalf("after %d clients vanished, %d long-polls still parked, want %d", n/2, bndParked(), n/2)
	}
	lap("vanished released")

	// The other half are woken by one send into the room they all share.
	waker.Send(room, "w1", "wake-1")
	woken.Wait()
	fresh := make([]string, n)
	bad := 0
	for i := range n {
		if vanishes(i) {
			continue
		}
		r := results[i]
		if r.err != nil || r.status != 200 || !bndHasBody(r.body, room, "wake-1") {
			if bad++; bad <= 3 {
				t.Errorf("woken poll %d = %d %v %.200s, want 200 with wake-1", i, r.status, r.err, r.body.Raw)
			}
			continue
		}
		fresh[i] = r.body.Get("next_batch").String()
	}
	if bad > 0 {
		t.Fatalf("%d of %d woken polls failed", bad, n/2)
	}
	if !bndPoll(pollCtx, 50*time.Millisecond, func() bool { return bndParked() == 0 }) {
		t.Fatalf("%d long-polls still parked after every client got its answer", bndParked())
	}
	lap("woken answered")

	// Reconnect storm: the 1,000 woken clients come back at once on new
	// connections. Every other one is behind (since = the old token: it has
	// wake-1 waiting and must be answered at once), the rest are current
	// (held until wake-2).
	bndCloseIdle(cl)
	var stormIdx []int
	for i := range n {
		if !vanishes(i) {
			stormIdx = append(stormIdx, i)
		}
	}
	storm := make([]result, len(stormIdx))
	start := make(chan struct{})
	var stormWG sync.WaitGroup
	stormCtx, stormCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer func() { stormCancel(); stormWG.Wait() }()
	behind := func(k int) bool { return k%2 == 0 }
	for k, i := range stormIdx {
		tok := fresh[i]
		if behind(k) {
			tok = since
		}
		stormWG.Go(func() {
			<-start
			st, body, err := cl.do(stormCtx, "GET", bndSyncPath(tok, pollMs), tokens[i/bndDevices][i%bndDevices], nil, nil)
			storm[k] = result{st, body, err}
		})
	}
	close(start)
	if !bndPoll(pollCtx, 50*time.Millisecond, func() bool { return bndParked() >= len(stormIdx)/2 }) {
		t.Fatalf("reconnect storm: %d current clients parked, want %d", bndParked(), len(stormIdx)/2)
	}
	lap("storm parked")
	waker.Send(room, "w2", "wake-2")
	stormWG.Wait()
	lap("storm answered")
	bad = 0
	for k, r := range storm {
		want := "wake-2"
		if behind(k) {
			want = "wake-1"
		}
		if r.err != nil || r.status != 200 || !bndHasBody(r.body, room, want) {
			if bad++; bad <= 3 {
				t.Errorf("storm sync %d (behind=%v) = %d %v %.200s, want 200 with %s", k, behind(k), r.status, r.err, r.body.Raw, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d reconnecting syncs failed", bad, len(stormIdx))
	}

	// Everything answered: goroutines and heap go back near the baseline.
	bndCloseIdle(cl)
	var afterG int
	var afterHeap uint64
	settleCtx, settleCancel := context.WithTimeout(ctx, 30*time.Second)
	defer settleCancel()
	back := bndPoll(settleCtx, 50*time.Millisecond, func() bool {
		afterG = runtime.NumGoroutine()
		return afterG <= baseG+goroutineMargin
	})
	bndPoll(settleCtx, 200*time.Millisecond, func() bool {
		afterHeap = bndHeap()
		return afterHeap <= baseHeap+heapMargin
	})
	lap("settled")
	t.Logf("phases: %s", strings.Join(took, ", "))
	t.Logf("goroutines: baseline %d, %d long-polls held %d (%.1f per poll, client side included), after %d (%+d)",
		baseG, n, heldG, float64(heldG-baseG)/n, afterG, afterG-baseG)
	t.Logf("heap: baseline %.1f MiB, %d long-polls held %.1f MiB (%.1f KiB per poll, client side included), after %.1f MiB (%+.1f)",
		bndMiB(baseHeap), n, bndMiB(heldHeap), (float64(heldHeap)-float64(baseHeap))/1024/n, bndMiB(afterHeap), bndMiB(afterHeap)-bndMiB(baseHeap))
	if !back {
		t.Errorf("goroutines after = %d, want <= %d (baseline %d + %d)", afterG, baseG+goroutineMargin, baseG, goroutineMargin)
		t.Logf("goroutines left over:\n%s", bndDump())
	}
	if afterHeap > baseHeap+heapMargin {
		t.Errorf("heap after = %.1f MiB, want <= %.1f MiB (baseline + %d MiB)", bndMiB(afterHeap), bndMiB(baseHeap+heapMargin), heapMargin>>20)
	}
}

// bndDump is the aggregated goroutine profile, for a failure message.
func bndDump() string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	return buf.String()
}

// TestServerShutdownLeavesNoGoroutines: a server holding long-polls stops
// promptly — the notifier answers the held polls instead of the shutdown
// waiting them out — and nothing it started is left running.
func TestServerShutdownLeavesNoGoroutines(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			const polls = 50
			// The only goleak option: goroutines that exist before the
			// server does are not the server's (the test runner's, and for
			// PostgreSQL the admin connection hstest.Stores opened to
			// create and later drop the database).
			before := goleak.IgnoreCurrent()

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"name": "shutdown"})
			alice.Send(room, "m1", "before shutdown")
			since := alice.Sync("", 0).Get("next_batch").String()
			cl := newBndClient(srv.URL, 2*polls)
			defer cl.close()
			tokens := make([]string, polls)
			if err := bndEach(polls, 4, func(i int) (err error) {
				tokens[i], err = cl.login(ctx, "alice")
				return err
			}); err != nil {
				t.Fatalf("logins: %v", err)
			}

			type result struct {
				status int
				body   gjson.Result
				err    error
				at     time.Time
			}
			results := make([]result, polls)
			var wg sync.WaitGroup
			defer wg.Wait()
			pollCtx, pollCancel := context.WithTimeout(ctx, time.Minute)
			defer pollCancel()
			for i := range polls {
				wg.Go(func() {
					st, body, err := cl.do(pollCtx, "GET", bndSyncPath(since, 60000), tokens[i], nil, nil)
					results[i] = result{st, body, err, time.Now()}
				})
			}
			if !bndPoll(pollCtx, 20*time.Millisecond, func() bool { return bndParked() >= polls }) {
				pollCancel()
				t.Fatalf("only %d of %d long-polls parked", bndParked(), polls)
			}

			stopStart := time.Now()
			srv.Stop() // hstest gives Shutdown 5 s before it cuts connections
			stopTook := time.Since(stopStart)
			wg.Wait()
			var slowest time.Duration
			for i, r := range results {
				took := r.at.Sub(stopStart)
				slowest = max(slowest, took)
				if r.err != nil || r.status != 200 || r.body.Get("next_batch").String() == "" {
					t.Errorf("poll %d after Stop = %d %v %.200s, want 200 with a next_batch", i, r.status, r.err, r.body.Raw)
				}
			}
			t.Logf("Stop took %v; the slowest held poll was answered %v after Stop began", stopTook.Round(time.Millisecond), slowest.Round(time.Millisecond))
			// Without the notifier's stop the polls would be cut when
			// Shutdown's 5 s run out, with an error instead of a 200.
			if slowest > 3*time.Second {
				t.Errorf("slowest held poll answered %v after Stop began, want < 3s", slowest)
			}

			// Our clients' keep-alive connections are closed by the server's
			// shutdown; closing the idle pools too makes their client-side
			// goroutines (persistConn readLoop/writeLoop) end now rather than
			// when they notice.
			bndCloseIdle(cl)
			goleak.VerifyNone(t, before)
		})
	}
}

// bndStallReader is a request body that serves avail bytes and then blocks
// until release is closed. A server that reads more than avail bytes before
// answering never answers (the request runs into its deadline), so an answer
// proves the server decided with at most avail bytes read. release must also
// close when the request's deadline passes: the transport's RoundTrip waits
// for its body writer, which is blocked here, before it returns the error.
type bndStallReader struct {
	avail   int64
	eof     bool // after avail bytes, end the body instead of blocking
	read    atomic.Int64
	release <-chan struct{}
}

func (r *bndStallReader) Read(p []byte) (int, error) {
	left := r.avail - r.read.Load()
	if left <= 0 && r.eof {
		return 0, io.EOF
	}
	if left <= 0 {
		<-r.release
		return 0, errors.New("stall reader released")
	}
	n := min(int64(len(p)), left)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.read.Add(n)
	return int(n), nil
}

// TestBodyAndDepthLimits: oversized JSON bodies get 413 and deeply nested
// ones 400 quickly, on authenticated and open routes; media uploads over the
// configured limit are refused without reading the body (when announced by
// Content-Length) or after reading at most the limit (when streamed).
func TestBodyAndDepthLimits(t *testing.T) {
	const mediaLimit = 64 << 10
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.Media.MaxUploadBytes = mediaLimit }})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"name": "limits"})
	cl := newBndClient(srv.URL, 16)
	defer cl.close()
	sendPath := func(txn string) string {
		return "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/send/m.room.message/" + txn
	}
	big := []byte(`{"msgtype":"m.text","body":"` + strings.Repeat("x", 2<<20) + `"}`)
	// nested(d) is a message whose JSON is d levels deep, the outer object included.
	nested := func(d int) []byte {
		return []byte(`{"msgtype":"m.text","body":"deep","n":` + strings.Repeat("[", d-1) + strings.Repeat("]", d-1) + `}`)
	}
	login := func(extra string) []byte {
		return []byte(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"nope","pad":` + extra + `}`)
	}

	t.Run("json", func(t *testing.T) {
		for _, tt := range []struct {
			name, method, path, token string
			body                      []byte
			status                    int
			errcode                   string
		}{
			{"2 MiB send", "PUT", sendPath("big"), alice.Token, big, 413, "M_TOO_LARGE"},
			{"2 MiB createRoom", "POST", "/_matrix/client/v3/createRoom", alice.Token, []byte(`{"name":"` + strings.Repeat("x", 2<<20) + `"}`), 413, "M_TOO_LARGE"},
			{"2 MiB login, unauthenticated", "POST", "/_matrix/client/v3/login", "", login(`"` + strings.Repeat("x", 2<<20) + `"`), 413, "M_TOO_LARGE"},
			{"nested 100 send", "PUT", sendPath("deep100"), alice.Token, nested(100), 400, "M_BAD_JSON"},
			{"nested 100 login, unauthenticated", "POST", "/_matrix/client/v3/login", "", login(strings.Repeat("[", 99) + strings.Repeat("]", 99)), 400, "M_BAD_JSON"},
			{"nested 65 send, one past the limit", "PUT", sendPath("deep65"), alice.Token, nested(65), 400, "M_BAD_JSON"},
			{"nested 64 send, at the limit", "PUT", sendPath("deep64"), alice.Token, nested(64), 200, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				start := time.Now()
				st, res, err := cl.do(ctx, tt.method, tt.path, tt.token, tt.body, nil)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("%s %s: %v (after %v)", tt.method, tt.name, err, took)
				}
				if st != tt.status || res.Get("errcode").String() != tt.errcode {
					t.Errorf("%s = %d %s, want %d %s", tt.name, st, res.Raw, tt.status, tt.errcode)
				}
				t.Logf("%s: %d in %v", tt.name, st, took.Round(time.Microsecond))
			})
		}
	})

	// Bodies that stall: each row's reader serves avail bytes and then
	// blocks, so only a server that decides within avail bytes answers.
	t.Run("stalled bodies", func(t *testing.T) {
		const upload = "/_matrix/media/v3/upload?filename=f.bin"
		for _, tt := range []struct {
			name     string
			path     string
			declared int64 // Content-Length; -1 streams the body chunked
			avail    int64
			expect   bool // send Expect: 100-continue
			status   int
			errcode  string
			maxRead  int64 // the most the reader may have served (-1: avail)
		}{
			// Announced too large: refused on the header, before the body.
			{"media declared 8 MiB", upload, 8 << 20, 4 << 10, false, 413, "M_TOO_LARGE", -1},
			// With Expect: 100-continue the client waits for the server's
			// go-ahead, which a refusal never gives: not one byte is sent.
			{"media declared 8 MiB, expect 100-continue", upload, 8 << 20, 4 << 10, true, 413, "M_TOO_LARGE", 0},
			// Streamed without a length: the server must stop at limit+1
			// bytes. net/http then drains up to 256 KiB more before it
			// writes the 413 (unless the handler asks to close the
			// connection), so the reader offers enough for that drain.
			{"media streamed past the limit", upload, -1, mediaLimit + 1 + 16<<10, false, 413, "M_TOO_LARGE", -1},
			// Control: an upload within the limit goes through (this
			// reader ends its body instead of stalling).
			{"media declared 32 KiB", upload, 32 << 10, 32 << 10, false, 200, "", -1},
			// A JSON body announced at 2 MiB: refused after at most
			// 1 MiB+1 bytes, without waiting for the rest.
			{"json declared 2 MiB", sendPath("stall"), 2 << 20, 1<<20 + 64<<10, false, 413, "M_TOO_LARGE", -1},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				// Released when the row ends or its deadline passes; either
				// unblocks the transport's body writer, which then ends.
				rel, releaseBody := context.WithCancel(ctx)
				defer releaseBody()
				body := &bndStallReader{avail: tt.avail, eof: tt.avail == tt.declared, release: rel.Done()}
				method := "POST"
				if strings.Contains(tt.path, "/send/") {
					method = "PUT"
				}
				req, err := http.NewRequestWithContext(ctx, method, srv.URL+tt.path, io.NopCloser(body))
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = tt.declared
				req.Header.Set("Authorization", "Bearer "+alice.Token)
				req.Header.Set("Content-Type", "application/octet-stream")
				if tt.expect {
					req.Header.Set("Expect", "100-continue")
				}
				start := time.Now()
				st, res, err := cl.send(req)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("%s: %v after %v (%d body bytes read): the server waited for more of the body", tt.name, err, took, body.read.Load())
				}
				if st != tt.status || res.Get("errcode").String() != tt.errcode {
					t.Errorf("%s = %d %s, want %d %s", tt.name, st, res.Raw, tt.status, tt.errcode)
				}
				maxRead := tt.maxRead
				if maxRead < 0 {
					maxRead = tt.avail
				}
				if got := body.read.Load(); got > maxRead {
					t.Errorf("%s: body bytes read = %d, want <= %d", tt.name, got, maxRead)
				}
				t.Logf("%s: %d in %v, %d body bytes read by the client", tt.name, st, took.Round(time.Microsecond), body.read.Load())
			})
		}
	})
}

// TestLoginFloodDoesNotStarveDelivery: 40 wrong-password logins at
// production hashing cost, one hash at a time, queue behind the hashing cap
// while bob long-polls and alice sends. The send must succeed and bob's poll
// deliver it while logins are still queued. Latencies are logged, not
// asserted.
func TestLoginFloodDoesNotStarveDelivery(t *testing.T) {
	const flood = 40
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) {
		c.Passwords.Argon2MemoryKiB, c.Passwords.Argon2Time, c.Passwords.Concurrency = 19456, 2, 1
		c.Passwords.MaxWaiting = flood // the whole flood queues: this test is about the queue, not its bound
	}})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	alice.Sync("", 0) // alice is online before the flood: her send is the only news
	since := bob.Sync("", 0).Get("next_batch").String()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := newBndClient(srv.URL, 2*flood)
	defer cl.close()

	type result struct {
		status int
		body   gjson.Result
		err    error
		at     time.Time
	}
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // every request ends, whatever happens
	bobGot := make(chan result, 1)
	wg.Go(func() {
		st, body, err := cl.do(ctx, "GET", bndSyncPath(since, 60000), bob.Token, nil, nil)
		bobGot <- result{st, body, err, time.Now()}
	})
	if !bndPoll(ctx, 20*time.Millisecond, func() bool { return bndParked() >= 1 }) {
		t.Fatal("bob's long-poll never parked")
	}

	logins := make([]result, flood)
	var loginsDone atomic.Int32
	floodStart := time.Now()
	for i := range flood {
		user := "alice" // wrong password for a real account: a full verify
		if i%2 == 1 {
			user = fmt.Sprintf("nobody%d", i) // unknown account: the dummy verify, same cost
		}
		wg.Go(func() {
			st, body, err := cl.do(ctx, "POST", "/_matrix/client/v3/login", "", map[string]any{
				"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": "wrong",
			}, nil)
			logins[i] = result{st, body, err, time.Now()}
			loginsDone.Add(1)
		})
	}
	// Wait until the flood is queued behind the single hashing slot.
	queued := 0
	if !bndPoll(ctx, 10*time.Millisecond, func() bool {
		queued = bndStacks("password.(*Hasher).acquire")
		return queued >= flood/2
	}) {
		t.Fatalf("only %d logins queued for a hashing slot, want >= %d", queued, flood/2)
	}

	sendStart := time.Now()
	st, res, err := cl.do(ctx, "PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/flood", alice.Token,
		map[string]any{"msgtype": "m.text", "body": "through the flood"}, nil)
	sendTook := time.Since(sendStart)
	doneAtSend := loginsDone.Load()
	if err != nil || st != 200 {
		t.Errorf("alice's send during the login flood = %d %v %s, want 200", st, err, res.Raw)
	}
	var bobRes result
	select {
	case bobRes = <-bobGot:
	case <-ctx.Done():
		t.Fatal("bob's long-poll never returned")
	}
	if bobRes.err != nil || bobRes.status != 200 || !bndHasBody(bobRes.body, room, "through the flood") {
		t.Errorf("bob's sync = %d %v %.300s, want 200 with alice's message", bobRes.status, bobRes.err, bobRes.body.Raw)
	}
	doneAtDelivery := loginsDone.Load()
	wg.Wait()
	floodTook := time.Since(floodStart)
	for i, r := range logins {
		if r.err != nil || r.status != 403 || r.body.Get("errcode").String() != "M_FORBIDDEN" {
			t.Errorf("bad login %d = %d %v %s, want 403 M_FORBIDDEN", i, r.status, r.err, r.body.Raw)
		}
	}
	// The point of the test is that delivery overlaps the flood; if every
	// login had finished first, it would have shown nothing.
	if doneAtDelivery >= flood {
		t.Errorf("logins finished before bob's delivery = %d, want < %d: the send waited out the whole flood", doneAtDelivery, flood)
	}
	t.Logf("%d logins queued for the one hashing slot when alice sent; send took %v (%d/%d logins done), bob had it %v after the send began (%d/%d done); the flood took %v (%v per login)",
		queued, sendTook.Round(time.Microsecond), doneAtSend, flood, bobRes.at.Sub(sendStart).Round(time.Microsecond), doneAtDelivery, flood,
		floodTook.Round(time.Millisecond), (floodTook / flood).Round(time.Millisecond))
}
