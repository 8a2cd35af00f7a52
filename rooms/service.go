package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	Store      *storage.Store
	Listener   CommitListener
	Logger     *slog.Logger
	// MaxBatch caps how many writes share one commit. Zero means 256.
	MaxBatch int
	// Now returns the current time; zero means time.Now. Tests may fix it.
	Now func() time.Time
	// Tiers are the group size tiers (rooms/tiers.go); zero means defaults.
	Tiers Tiers
}

// Service is the room writer and the room read API.
type Service struct {
	// Static after New.
	cfg   Config
	store *storage.Store
	log   *slog.Logger
	jobs  chan *job
	quit  chan struct{}
	done  chan struct{}

	stopOnce sync.Once

	// Owned by the writer goroutine.
	pos   int64
	rooms map[string]*roomState
}

// New creates the service and starts its writer goroutine. Shutdown stops it.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
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
	s := &Service{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		jobs:  make(chan *job, 4096),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		pos:   pos,
		rooms: map[string]*roomState{},
	}
	go s.writeLoop()
	return s, nil
}

// Shutdown stops accepting writes, finishes those queued, and waits for the
// writer to exit or ctx to end.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.quit) })
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
}

// submit queues fn for the writer and waits for its commit. The wait ends
// early if ctx ends, but the write itself still happens or fails on its own:
// a client that hangs up does not cancel a send it already made.
func (s *Service) submit(ctx context.Context, fn func(ctx context.Context, b *batch) error) error {
	j := &job{apply: fn, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-s.quit:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) writeLoop() {
	defer close(s.done)
	pending := make([]*job, 0, s.cfg.MaxBatch)
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.quit:
			// Drain what is queued, then stop.
			for {
				select {
				case j := <-s.jobs:
					s.runBatch([]*job{j})
				default:
					return
				}
			}
		}
		pending = append(pending[:0], first)
	drain:
		for len(pending) < s.cfg.MaxBatch {
			select {
			case j := <-s.jobs:
				pending = append(pending, j)
			default:
				break drain
			}
		}
		s.runBatch(pending)
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
	tx, err := s.store.BeginWrite(ctx)
	if err != nil {
		return nil, err
	}
	b := &batch{s: s, tx: tx, startPos: s.pos, commit: &Commit{}}
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
			// A job refused after it changed memory: undo its part only.
			b.rollbackTo(mark)
		}
		results[i] = err
	}
	if err := tx.Commit(); err != nil {
		b.rollback()
		return nil, err
	}
	if b.commit.Pos = s.pos; b.commit.Pos > b.startPos && s.cfg.Listener != nil {
		s.cfg.Listener.Committed(b.commit)
	}
	return results, nil
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
