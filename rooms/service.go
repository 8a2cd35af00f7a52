package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// CommitListener hears about every committed batch, in position order, before
// any reader can observe its positions. The sync notifier implements it.
type CommitListener interface {
	Committed(c *Commit)
}

// Config holds what the room service needs from the server configuration.
type Config struct {
	ServerName string
	Key        *pdu.SigningKey
	Store      Store
	Listener   CommitListener
	Logger     *slog.Logger
	// Policy is asked about every invite a local user makes, whatever the
	// route (membership_policy.go). Nil asks nothing: the auth rules only.
	Policy MembershipPolicy
	// Remote takes invites of other servers' users to their server
	// (remote_invite.go). Nil refuses such invites.
	Remote RemoteInviter
	// MaxBatch caps how many writes share one commit. Zero means 256.
	MaxBatch int
	// MaxBatchEvents caps the events one commit appends (a job's cost is
	// about the events it writes), so one commit, and the wait of every
	// write in it, stays short. A single larger job still runs, alone.
	// Zero means 128.
	MaxBatchEvents int
	// MaxQueue caps the writes waiting for the writer; beyond it writes are
	// refused with ErrOverloaded. Zero means 4096.
	MaxQueue int
	// MaxQueuePerUser caps one user's waiting writes; beyond it that user's
	// writes are refused with ErrBusy. Zero means 128.
	MaxQueuePerUser int
	// CacheBytes bounds the estimated memory of the writer's room cache.
	// Zero means 256 MiB.
	CacheBytes int64
	// Limits bound createRoom and room state; zero fields mean defaults.
	Limits Limits
	// Now returns the current time; zero means time.Now. Tests may fix it.
	Now func() time.Time
	// Tiers are the group size tiers (rooms/tiers.go); zero means defaults.
	Tiers Tiers
	// DefaultRoomVersion is the version of rooms created without one. Zero
	// means pdu.DefaultRoomVersion; New refuses a version pdu does not
	// implement.
	DefaultRoomVersion string
	// Actions limits messages, joins, invites and room creation per user
	// (actionlimit.go). Nil means unlimited.
	Actions *ActionLimits
	// ReceiptHook, when set, is called with each receipt PutReceipt
	// stored (not one ignored as older), after its commit, on the
	// caller's goroutine: federation sends local users' receipts to the
	// room's other servers with it. It must not block.
	ReceiptHook func(storage.Receipt)
}

// Service is the room writer and the room read API.
type Service struct {
	// Static after New.
	cfg   Config
	store Store
	log   *slog.Logger
	queue *fairQueue
	quit  chan struct{}
	done  chan struct{}

	stopOnce sync.Once

	// createMu guards lastCreateTS, the newest version 12 create
	// timestamp handed out (createTimestamp).
	createMu     sync.Mutex
	lastCreateTS int64

	// blocked is the set of rooms an operator blocked (blocked.go).
	blocked blockedRooms

	// stats are the writer's histograms (writer_metrics.go).
	stats writerStats

	// searchBehind is set by the writer after a commit while the search
	// index has a backlog; searchDone is how far the index reaches and
	// committed the last position committed, both published by the writer
	// after each commit. Searches read them (searchindex.go).
	searchBehind atomic.Bool
	searchDone   atomic.Int64
	committed    atomic.Int64

	// Owned by the writer goroutine.
	pos         int64 // the last stream position assigned
	group       int64 // the last state group ID assigned
	backfillPos int64 // the last (lowest, <= 0) backfill position assigned
	// searchPos is the position up to which the search index is complete;
	// searchBacklog about how many searchable events lie above it
	// (searchindex.go).
	searchPos     int64
	searchBacklog int
	cache         *roomCache
	// unsure is set when a commit failed and the store could not be asked
	// whether it landed: pos and cache may be behind the store (resync).
	unsure bool
}

// New creates the service and starts its writer goroutine. Shutdown stops it.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxBatchEvents <= 0 {
		cfg.MaxBatchEvents = 128
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 4096
	}
	if cfg.MaxQueuePerUser <= 0 {
		cfg.MaxQueuePerUser = 128
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 256 << 20
	}
	cfg.Limits.fillDefaults()
	if cfg.DefaultRoomVersion == "" {
		cfg.DefaultRoomVersion = pdu.DefaultRoomVersion
	}
	if !pdu.Supported(cfg.DefaultRoomVersion) {
		return nil, fmt.Errorf("rooms: default room version %q is not implemented", cfg.DefaultRoomVersion)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pos, err := cfg.Store.MaxPosition(ctx)
	if err != nil {
		return nil, err
	}
	group, err := cfg.Store.MaxStateGroup(ctx)
	if err != nil {
		return nil, err
	}
	backfillPos, err := cfg.Store.MinPosition(ctx)
	if err != nil {
		return nil, err
	}
	searchPos, err := cfg.Store.SearchIndexedPos(ctx)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:         cfg,
		store:       cfg.Store,
		log:         cfg.Logger,
		queue:       newFairQueue(cfg.MaxQueue, cfg.MaxQueuePerUser),
		stats:       newWriterStats(),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
		pos:         pos,
		group:       group,
		backfillPos: backfillPos,
		searchPos:   searchPos,
		cache:       newRoomCache(cfg.CacheBytes),
	}
	s.searchDone.Store(searchPos)
	s.committed.Store(pos)
	if searchPos < pos {
		s.searchBacklog = 1 // unknown how many: one pass finds out
		s.searchBehind.Store(true)
	}
	if err := s.loadBlocked(ctx); err != nil {
		return nil, err
	}
	go s.writeLoop()
	return s, nil
}

// Shutdown stops accepting writes, finishes those queued, and waits for the
// writer to exit or ctx to end.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.queue.close(); close(s.quit) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// job is one unit of work for the writer. apply may run more than once (when
// its batch fails and the writer retries jobs one by one), so it must only
// write through the batch and keep its results in variables it resets.
type job struct {
	apply func(ctx context.Context, b *batch) error
	done  chan error
	cost  int // about the events it appends; at least 1
}

// submit queues fn for the writer as a write of user's costing one event, and
// waits for its commit. user is whom the write counts against for fair turns
// and backlog bounds ("" for the server's own writes, which are never
// refused).
func (s *Service) submit(ctx context.Context, user string, fn func(ctx context.Context, b *batch) error) error {
	return s.submitCost(ctx, user, 1, fn)
}

// submitCost is submit for a job appending about cost events. The wait ends
// early if ctx ends, but the write itself still happens or fails on its own:
// a client that hangs up does not cancel a send it already made. When the
// queue is full it refuses at once (ErrBusy, ErrOverloaded) rather than wait.
func (s *Service) submitCost(ctx context.Context, user string, cost int, fn func(ctx context.Context, b *batch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	j := &job{apply: fn, done: make(chan error, 1), cost: max(cost, 1)}
	if err := s.queue.push(user, j); err != nil {
		return err
	}
	select {
	case err := <-j.done:
		s.stats.jobTime.Observe(sinceSeconds(start))
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) writeLoop() {
	defer close(s.done)
	pending := make([]*job, 0, s.cfg.MaxBatch)
	idle := time.NewTimer(searchIndexIdle)
	idle.Stop()
	for {
		pending = s.queue.take(pending[:0], s.cfg.MaxBatch, s.cfg.MaxBatchEvents)
		if len(pending) > 0 {
			s.runBatch(pending)
			clear(pending) // let finished jobs' closures go
			s.cache.evictIdle()
			if s.searchBacklog >= searchIndexBacklog {
				s.runSearchPass()
			}
			continue
		}
		var indexNow <-chan time.Time
		if s.searchBacklog > 0 {
			idle.Reset(searchIndexIdle)
			indexNow = idle.C
		}
		select {
		case <-indexNow:
			s.runSearchPass()
		case <-s.queue.wake:
			idle.Stop()
		case <-s.quit:
			// The queue refuses new jobs now: finish those queued, then stop.
			for {
				pending = s.queue.take(pending[:0], s.cfg.MaxBatch, s.cfg.MaxBatchEvents)
				if len(pending) == 0 {
					return
				}
				s.runBatch(pending)
			}
		}
	}
}

// runBatch applies jobs in one transaction. If the commit fails, every change
// to the writer's memory is undone, and when there was more than one job each
// is retried alone, so one bad write cannot sink its neighbours.
func (s *Service) runBatch(jobs []*job) {
	results, err := s.tryBatch(jobs)
	if err == nil {
		for i, j := range jobs {
			j.done <- results[i]
		}
		return
	}
	if len(jobs) == 1 {
		jobs[0].done <- err
		return
	}
	s.log.Warn("batch commit failed; retrying writes one by one", "writes", len(jobs), "err", err)
	for _, j := range jobs {
		res, err := s.tryBatch([]*job{j})
		if err != nil {
			j.done <- err
		} else {
			j.done <- res[0]
		}
	}
}

// tryBatch returns per-job results (nil or a refusal) and a batch-level error
// when the transaction as a whole failed.
func (s *Service) tryBatch(jobs []*job) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.unsure {
		if err := s.resync(ctx); err != nil {
			return nil, err
		}
	}
	begin := time.Now()
	tx, err := s.store.BeginWrite(ctx)
	if err != nil {
		return nil, err
	}
	b := &batch{s: s, tx: tx, startPos: s.pos, startGroup: s.group, startBackfill: s.backfillPos, commit: &Commit{}}
	results := make([]error, len(jobs))
	for i, j := range jobs {
		mark := len(b.undo)
		err := safeApply(ctx, j, b)
		var txErr *txError
		if errors.As(err, &txErr) {
			tx.Rollback()
			b.rollback()
			return nil, txErr.err
		}
		if err != nil && len(b.undo) != mark {
			// A job refused after it wrote: memory changes only ever follow
			// writes, and a transaction cannot drop one job's rows. Fail the
			// batch, so that each job is retried alone and this one's rows
			// are rolled back with its own transaction; undoing its memory
			// alone committed a refused event behind the writer's back.
			tx.Rollback()
			b.rollback()
			return nil, err
		}
		results[i] = err
	}
	if err := b.flushDAG(ctx); err != nil {
		tx.Rollback()
		b.rollback()
		return nil, err
	}
	commitStart := time.Now()
	if err := tx.Commit(); err != nil {
		if !s.committedAnyway(b, err) {
			b.rollback()
			return nil, err
		}
	}
	s.stats.commitTime.Observe(sinceSeconds(commitStart))
	s.stats.batchTime.Observe(sinceSeconds(begin))
	s.stats.batchJobs.Observe(float64(len(jobs)))
	s.afterCommitSearch(b)
	if b.commit.Pos = s.pos; (b.commit.Pos > b.startPos || len(b.commit.Purged) > 0) && s.cfg.Listener != nil {
		s.cfg.Listener.Committed(b.commit)
	}
	return results, nil
}

// committedAnyway reports whether a batch whose commit returned err is
// durable all the same: a connection can drop after the database committed
// and before its answer arrived. Positions come only from this writer, and
// every batch before this one committed at or below its start, so any
// position above the start in the store is this batch's. Undoing such a batch
// would hand its positions out again and build on events it forgot, and
// every later write would collide with the durable ones. When the store
// cannot be asked, the batch counts as failed (nothing is acknowledged that
// may be lost) and the next batch first resyncs.
func (s *Service) committedAnyway(b *batch, err error) bool {
	if s.pos == b.startPos {
		return false // it wrote no position, so it cannot be told apart; nothing to hand out twice either
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stored, qerr := s.store.MaxPosition(ctx)
	switch {
	case qerr != nil:
		s.log.Error("commit failed and the store cannot say whether it landed; resyncing before the next write", "err", err, "check", qerr)
		s.unsure = true
		return false
	case stored > b.startPos:
		s.log.Warn("commit reported a failure but its writes are durable; acknowledging them", "err", err)
		return true
	}
	return false
}

// resync reloads what the writer keeps in memory from the store after a
// commit of unknown outcome: the position, and the rooms' state (every
// cached room is dropped and reloads on its next write).
func (s *Service) resync(ctx context.Context) error {
	stored, err := s.store.MaxPosition(ctx)
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	s.pos = max(s.pos, stored)
	for id := range s.cache.rooms {
		s.cache.remove(id)
	}
	s.unsure = false
	return nil
}

// safeApply runs a job, turning a panic into a transaction failure: a bug
// triggered by one request must not stop the only writer.
func safeApply(ctx context.Context, j *job, b *batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &txError{err: fmt.Errorf("write panicked: %v", r)}
		}
	}()
	return j.apply(ctx, b)
}

// txError marks an error that poisons the whole transaction (a database
// failure), as opposed to a refusal of one job.
type txError struct{ err error }

func (e *txError) Error() string { return e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

func dbErr(err error) error {
	if err == nil {
		return nil
	}
	return &txError{err: fmt.Errorf("store: %w", err)}
}
