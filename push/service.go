package push

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Rules is what the scanner needs of a user's push rules;
// *pushrules.Service implements it (with a cache, so most calls make no
// query, and the compiled ruleset is kept until the user edits a rule).
type Rules interface {
	ForSync(ctx context.Context, userID string, initial bool) (map[string]bool, json.RawMessage, error)
	Evaluator(ctx context.Context, userID string) (*pushrules.Evaluator, error)
}

// Config holds what the service needs. Zero values mean the defaults named.
type Config struct {
	Store  *storage.Store
	Rules  Rules
	Logger *slog.Logger
	// AllowIPs opens denied address ranges to delivery (config
	// push.allow_ips). Zero value means none.
	AllowIPs []netip.Prefix
	// MaxQueue caps the notifications waiting per pusher. Zero means 1000.
	MaxQueue int
	// MinBackoff is the wait after a gateway's first failure; it doubles
	// per failure up to MaxBackoff, then ±50 % jitter. Zero means 1 s and
	// 10 min.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one request to a gateway. Zero means 10 s.
	Timeout time.Duration
	// MaxPushersPerUser caps a user's pushers. Zero means 100.
	MaxPushersPerUser int
	// Client sends the requests; nil means one with the SSRF guard
	// (guard.go). Tests of the guard itself leave it nil.
	Client *http.Client
	// Now returns the current time; zero means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1); zero means math/rand/v2.Float64.
	Jitter func() float64
}

func (c *Config) fillDefaults() {
	if c.MaxQueue <= 0 {
		c.MaxQueue = 1000
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxPushersPerUser <= 0 {
		c.MaxPushersPerUser = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Client == nil {
		c.Client = guardedClient(c.AllowIPs, c.Timeout)
	}
}

// Service owns pushers and their delivery.
type Service struct {
	// Static after New.
	cfg    Config
	store  *storage.Store
	log    *slog.Logger
	ctx    context.Context // ends at Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// latest is the highest committed position announced; stored by the
	// writer goroutine (Committed) and the scanner, read by the scanner.
	latest atomic.Int64
	// scanned is the position up to which queue rows are written (or
	// nothing was owed). Stored by the scanner only.
	scanned  atomic.Int64
	scanWake chan struct{} // capacity 1: a pending wake-up for the scanner
	// anyPushers is false while no pusher exists: the scanner then skips
	// reading the log. Set true by Set, false by the scanner's periodic
	// count, both under setMu, so a count cannot miss a pusher being added.
	anyPushers atomic.Bool
	setMu      sync.Mutex

	// seq is the last queue row number handed out. Owned by the scanner.
	seq int64

	mu      sync.Mutex
	pending map[int64]int64   // guarded by mu: queue rows per pusher
	workers map[int64]*worker // guarded by mu: pushers with a running worker

	stats stats
}

// worker is one pusher's delivery goroutine's shared part.
type worker struct {
	dirty bool // guarded by Service.mu: new rows since the worker last looked
}

// New loads the queue's state from the store and starts the scanner and a
// worker for every pusher with queued notifications. Feed it by
// registering it as a commit listener of the room writer (Committed);
// Shutdown stops it.
func New(ctx context.Context, cfg Config) (*Service, error) {
	cfg.fillDefaults()
	if cfg.Store == nil || cfg.Rules == nil {
		return nil, errors.New("push: Store and Rules are required")
	}
	st, err := cfg.Store.LoadPushState(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := cfg.Store.MaxPosition(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger, ctx: sctx, cancel: cancel, scanWake: make(chan struct{}, 1),
		seq: st.MaxSeq, pending: st.Pending, workers: map[int64]*worker{}}
	s.latest.Store(latest)
	s.scanned.Store(st.ScanPos)
	s.anyPushers.Store(st.Pushers > 0)
	s.wg.Add(1)
	go s.scanLoop()
	s.scanWake <- struct{}{}
	s.mu.Lock()
	for id := range s.pending {
		s.wakeLocked(id)
	}
	s.mu.Unlock()
	return s, nil
}

// Shutdown stops the scanner and every worker and waits for them, or for
// ctx to end. A request in flight is cut; its row stays queued and is sent
// again by the next service on this store.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.cancel() // under mu: wake starts no worker after this
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Committed is the room writer's commit notice (rooms.CommitListener). It
// runs on the writer goroutine, so it only records the position and wakes
// the scanner: no blocking, no allocation, no I/O.
func (s *Service) Committed(c *rooms.Commit) {
	s.raiseLatest(c.Pos)
	if len(c.Events) == 0 {
		return
	}
	select {
	case s.scanWake <- struct{}{}:
	default:
	}
}

func (s *Service) raiseLatest(pos int64) {
	for {
		cur := s.latest.Load()
		if pos <= cur || s.latest.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// wakeLocked makes sure the pusher's worker runs and looks again. s.mu
// must be held.
func (s *Service) wakeLocked(id int64) {
	if s.ctx.Err() != nil {
		return
	}
	w := s.workers[id]
	if w != nil {
		w.dirty = true
		return
	}
	s.workers[id] = &worker{}
	s.wg.Add(1)
	go s.runPusher(id)
}

// Status is the delivery state, for operators and tests.
type Status struct {
	ScannedPos int64 // every event at or below has been queued
	LatestPos  int64 // the newest committed position the service knows of
	Queued     int64 // notifications waiting, all pushers (from memory)
}

// Status reports the delivery state from memory.
func (s *Service) Status() Status {
	s.mu.Lock()
	var n int64
	for _, c := range s.pending {
		n += max(c, 0)
	}
	s.mu.Unlock()
	return Status{ScannedPos: s.scanned.Load(), LatestPos: s.latest.Load(), Queued: n}
}
