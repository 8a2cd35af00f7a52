package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Limits of a transaction, from the spec (server-server API, /send).
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
)

// Sentinel errors.
var (
	// ErrQueueFull refuses a durable EDU for a destination that already has
	// Config.MaxDurableEDUs waiting.
	ErrQueueFull = errors.New("outbound: destination queue full")
	// ErrStopped refuses work after Shutdown.
	ErrStopped = errors.New("outbound: queue stopped")
	// ErrBadDestination refuses an EDU for our own server or an empty name.
	ErrBadDestination = errors.New("outbound: bad destination")
)

// Config holds what the queue needs. Zero values mean the defaults named.
type Config struct {
	// ServerName is ours: the origin of every transaction. Only events sent
	// by our users go out; each server sends its own.
	ServerName string
	Store      *storage.Store
	Transport  Transport
	Logger     *slog.Logger
	// MinBackoff is the wait after a destination's first failure; it
	// doubles per failure. Zero means 2 s.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between retries (before ±50 % jitter). Zero
	// means 1 h: a server down for a day gets 24 or so tries, and comes
	// back within the hour, or at once when Reachable is called.
	MaxBackoff time.Duration
	// SendTimeout bounds one attempt. Zero means 60 s.
	SendTimeout time.Duration
	// MaxEphemeralEDUs caps the typing, receipt and presence EDUs held in
	// memory per destination; beyond it the oldest is dropped. Zero means 100.
	MaxEphemeralEDUs int
	// MaxDurableEDUs caps the durable EDUs waiting in the store per
	// destination; beyond it EnqueueEDU fails with ErrQueueFull. Zero means
	// 100000.
	MaxDurableEDUs int
	// Now returns the current time; zero means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1); zero means math/rand/v2.Float64.
	Jitter func() float64
}

func (c *Config) fillDefaults() {
	if c.MinBackoff <= 0 {
		c.MinBackoff = 2 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Hour
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 60 * time.Second
	}
	if c.MaxEphemeralEDUs <= 0 {
		c.MaxEphemeralEDUs = 100
	}
	if c.MaxDurableEDUs <= 0 {
		c.MaxDurableEDUs = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Queue is the outbound federation queue: a scanner that follows the room
// logs and one worker goroutine per destination with work.
type Queue struct {
	// Static after New.
	cfg    Config
	store  *storage.Store
	log    *slog.Logger
	ctx    context.Context // ends at Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// latest is the highest committed position the writer announced; the
	// writer goroutine stores it, the scanner reads it.
	latest atomic.Int64
	// scanned is the position up to which fed_room_servers is complete:
	// workers read PDUs at or below it only. Stored by the scanner.
	scanned  atomic.Int64
	scanWake chan struct{} // capacity 1: a pending wake-up for the scanner
	saves    chan saveReq  // to the saver (saver.go)

	// Written under roomsMu by the scanner goroutine (and before it
	// starts) and by OpenRoomServers; read under roomsMu by everyone.
	roomsMu    sync.RWMutex
	rooms      map[string]map[string]struct{} // room -> remote servers in it now
	joinCounts map[roomServer]int             // joined users per (room, server) at the scan position

	mu    sync.Mutex
	dests map[string]*dest // guarded by mu; destinations with a worker or buffered EDUs

	eduMu      sync.Mutex     // held across a durable EDU's insert, so IDs commit in order
	eduID      int64          // guarded by eduMu: the last durable EDU ID handed out
	eduPending map[string]int // guarded by eduMu: durable EDUs waiting per destination
}

type roomServer struct{ room, server string }

// dest is one destination's in-memory part. Its queue state lives in the
// store (fed_destinations) and, while its worker runs, in the worker.
type dest struct {
	name string
	// Guarded by Queue.mu.
	running   bool  // a worker goroutine serves it
	dirty     bool  // woken since the worker last looked
	ephemeral []EDU // typing, receipts, presence not yet sent
	// reachable (capacity 1) cuts a backoff short: we heard from it.
	reachable chan struct{}
	// wakeCh (capacity 1) ends a worker's linger: new work.
	wakeCh chan struct{}
}

// New loads the queue's state from the store and starts the scanner and a
// worker for every destination that may be owed something. Register the
// queue as a commit listener of the room writer (its Committed method) to
// feed it; Shutdown stops it.
func New(ctx context.Context, cfg Config) (*Queue, error) {
	cfg.fillDefaults()
	if cfg.Store == nil || cfg.Transport == nil || cfg.ServerName == "" {
		return nil, errors.New("outbound: Store, Transport and ServerName are required")
	}
	st := cfg.Store
	scanned, err := st.FedScanPos(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := st.MaxPosition(ctx)
	if err != nil {
		return nil, err
	}
	spans, err := st.FedOpenSpans(ctx)
	if err != nil {
		return nil, err
	}
	eduID, pending, err := st.FedEDUStats(ctx)
	if err != nil {
		return nil, err
	}
	known, err := st.FedKnownDestinations(ctx)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		cfg: cfg, store: st, log: cfg.Logger, ctx: qctx, cancel: cancel,
		scanWake: make(chan struct{}, 1), rooms: map[string]map[string]struct{}{}, joinCounts: map[roomServer]int{},
		dests: map[string]*dest{}, eduID: eduID, eduPending: pending, saves: make(chan saveReq, maxSaveBatch),
	}
	q.scanned.Store(scanned)
	q.latest.Store(latest)
	for _, sp := range spans {
		q.roomAdd(sp.RoomID, sp.Server)
	}
	q.wg.Add(2)
	go q.saveLoop()
	go q.scanLoop()
	q.scanWake <- struct{}{}
	for _, d := range known {
		q.wake(d)
	}
	return q, nil
}

// Shutdown stops the scanner and every worker and waits for them, or for
// ctx to end. An attempt in flight is cut; its transaction is retried, with
// the same ID, by the next queue on this store.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	q.cancel() // under mu: wake starts no worker after this
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Committed is the room writer's commit notice (rooms.CommitListener). It
// runs on the writer goroutine, so it only records the position and wakes
// the scanner: it never blocks, allocates nothing and does no I/O.
func (q *Queue) Committed(c *rooms.Commit) {
	q.raiseLatest(c.Pos)
	if len(c.Events) == 0 {
		return
	}
	select {
	case q.scanWake <- struct{}{}:
	default:
	}
}

// raiseLatest moves latest up to pos (never down). The writer's notice and
// the scanner's periodic look at the store both raise it.
func (q *Queue) raiseLatest(pos int64) {
	for {
		cur := q.latest.Load()
		if pos <= cur || q.latest.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// Reachable tells the queue that destination answered us (e.g. it sent us a
// request): a worker waiting out a backoff for it retries at once.
func (q *Queue) Reachable(destination string) {
	q.mu.Lock()
	d := q.dests[destination]
	q.mu.Unlock()
	if d == nil {
		return
	}
	select {
	case d.reachable <- struct{}{}:
	default:
	}
}

// EnqueueEDU queues an EDU for destination. Durable types (IsDurableEDU)
// are in the store when it returns; others are held in memory, at most
// Config.MaxEphemeralEDUs per destination, and dropped when the attempt
// carrying them fails.
func (q *Queue) EnqueueEDU(ctx context.Context, destination string, edu EDU) error {
	if destination == "" || destination == q.cfg.ServerName {
		return fmt.Errorf("%w: %q", ErrBadDestination, destination)
	}
	if q.ctx.Err() != nil {
		return ErrStopped
	}
	if IsDurableEDU(edu.Type) {
		q.eduMu.Lock()
		if q.eduPending[destination] >= q.cfg.MaxDurableEDUs {
			q.eduMu.Unlock()
			return fmt.Errorf("%w: %s has %d EDUs waiting", ErrQueueFull, destination, q.cfg.MaxDurableEDUs)
		}
		id := q.eduID + 1
		if err := q.store.FedPutEDU(ctx, destination, id, edu.Type, edu.Content); err != nil {
			q.eduMu.Unlock()
			return err
		}
		q.eduID = id
		q.eduPending[destination]++
		q.eduMu.Unlock()
		q.wake(destination)
		return nil
	}
	q.mu.Lock()
	d := q.destLocked(destination)
	if len(d.ephemeral) >= q.cfg.MaxEphemeralEDUs {
		copy(d.ephemeral, d.ephemeral[1:])
		d.ephemeral = d.ephemeral[:len(d.ephemeral)-1]
	}
	d.ephemeral = append(d.ephemeral, edu)
	q.mu.Unlock()
	q.wake(destination)
	return nil
}

// pendingEDUs reports whether destination has durable EDUs waiting.
func (q *Queue) pendingEDUs(destination string) bool {
	q.eduMu.Lock()
	defer q.eduMu.Unlock()
	return q.eduPending[destination] > 0
}

func (q *Queue) ackedEDUs(destination string, n int) {
	q.eduMu.Lock()
	defer q.eduMu.Unlock()
	if q.eduPending[destination] -= n; q.eduPending[destination] <= 0 {
		delete(q.eduPending, destination)
	}
}

func (q *Queue) destLocked(name string) *dest {
	d := q.dests[name]
	if d == nil {
		d = &dest{name: name, reachable: make(chan struct{}, 1), wakeCh: make(chan struct{}, 1)}
		q.dests[name] = d
	}
	return d
}

// wake makes sure destination's worker runs and looks again.
func (q *Queue) wake(destination string) {
	if destination == q.cfg.ServerName {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx.Err() != nil {
		return
	}
	d := q.destLocked(destination)
	d.dirty = true
	if !d.running {
		d.running = true
		q.wg.Add(1)
		go q.runDest(d)
		return
	}
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// serverOf returns the server part of a user ID ("" if it has none).
func serverOf(userID string) string {
	i := strings.IndexByte(userID, ':')
	if i < 0 {
		return ""
	}
	return userID[i+1:]
}

// ServersInRoom appends to dst the remote servers with a joined user in
// roomID, as of the last scan, for EDUs about the room (typing, receipts).
// It reads memory only.
func (q *Queue) ServersInRoom(dst []string, roomID string) []string {
	q.roomsMu.RLock()
	for srv := range q.rooms[roomID] {
		dst = append(dst, srv)
	}
	q.roomsMu.RUnlock()
	return dst
}
