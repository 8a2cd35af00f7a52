package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// bench is what every scenario shares: the options, the client, the
// progress bar, the error log and the message counter.
type bench struct {
	opt  options
	c    *client
	prog *progress
	errs *errorLog
	ids  atomic.Uint64 // last bench message ID handed out
}

// run builds the client and runs the chosen scenario. It returns the report
// even when the run was cut short, with the error that cut it.
func run(ctx context.Context, opt options, prog *progress) (*report, error) {
	conns := max(opt.Conns, opt.Users, opt.Members) + opt.Senders
	if err := ensureFileLimit(conns); err != nil {
		return nil, err
	}
	b := &bench{opt: opt, c: newClient(opt.Target, opt.SetPresence, conns, opt.RequestTimeout, opt.PollTimeout), prog: prog, errs: newErrorLog()}
	defer b.c.close()
	scenarios := map[string]func(context.Context, *bench) (*report, error){
		"send":           runSend,
		"latency":        runLatency,
		"fanout":         runFanout,
		"channel-fanout": runChannelFanout,
		"idle":           runIdle,
		"initial-sync":   runInitialSync,
	}
	scenario, ok := scenarios[opt.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q", opt.Scenario)
	}
	rep, err := scenario(ctx, b)
	if rep != nil && ctx.Err() != nil {
		rep.Interrupted = true
	}
	return rep, err
}

// setupContext bounds a scenario's setup by --setup-timeout.
func (b *bench) setupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opt.SetupTimeout)
}

// parallel runs fn for 0..n-1 with at most --setup-concurrency at once and a
// progress bar, and stops at the first error.
func (b *bench) parallel(ctx context.Context, label string, n int, fn func(ctx context.Context, i int) error) error {
	var done atomic.Int64
	stop := b.prog.track(label, int64(n), done.Load, nil)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opt.SetupConcurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := fn(gctx, i); err != nil {
				return err
			}
			done.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return ctx.Err()
}

// createRooms has owner create n public rooms.
func (b *bench) createRooms(ctx context.Context, owner *user, n int) ([]string, error) {
	rooms := make([]string, n)
	err := b.parallel(ctx, "create rooms", n, func(ctx context.Context, i int) error {
		id, err := b.c.createRoom(ctx, owner, fmt.Sprintf("%s room %d", b.opt.UserPrefix, i))
		rooms[i] = id
		return err
	})
	return rooms, err
}

// membership is one user's place in one room.
type membership struct {
	u    *user
	room string
}

func (b *bench) joinAll(ctx context.Context, joins []membership) error {
	return b.parallel(ctx, "join rooms", len(joins), func(ctx context.Context, i int) error {
		return b.c.join(ctx, joins[i].u, joins[i].room)
	})
}

// initialSyncs runs every user's first sync and returns their next_batch
// tokens: measuring starts from there, never inside an initial sync.
func (b *bench) initialSyncs(ctx context.Context, users []*user) ([]string, error) {
	since := make([]string, len(users))
	err := b.parallel(ctx, "initial syncs", len(users), func(ctx context.Context, i int) error {
		s, err := b.c.initialSync(ctx, users[i])
		since[i] = s
		return err
	})
	return since, err
}

// pollers is a group of long-polling users and the goroutines behind them.
type pollers struct {
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	answers atomic.Int64
	started atomic.Int64
	limited atomic.Int64
}

// startPollers starts one poller per user, each from its since token, and
// waits until all of them have sent their first long-poll (or setupCtx
// ends). deliver may be nil. Stop them with stop.
func (b *bench) startPollers(ctx, setupCtx context.Context, users []*user, since []string, deliver func(delivery)) (*pollers, error) {
	if err := b.uploadFilters(setupCtx, users); err != nil {
		return nil, err
	}
	ps := &pollers{}
	pctx, cancel := context.WithCancel(ctx)
	ps.cancel = cancel
	ps.add(pctx, b, users, since, deliver)
	if err := waitFor(setupCtx, func() bool { return ps.started.Load() == int64(len(users)) }); err != nil {
		ps.stop()
		return nil, fmt.Errorf("start long-polls: %w", err)
	}
	// The first poll has left this process; give it a moment to reach the
	// server, so the first messages do not wait for their poll to arrive.
	sleepCtx(setupCtx, 100*time.Millisecond)
	return ps, nil
}

// uploadFilters stores the long-poll filter once for each distinct user
// (uploadFilter), so that every long-poll names it by ID.
func (b *bench) uploadFilters(ctx context.Context, users []*user) error {
	var distinct []*user
	seen := map[*user]bool{}
	for _, u := range users {
		if !seen[u] && u.pollFilterID == "" {
			seen[u] = true
			distinct = append(distinct, u)
		}
	}
	return b.parallel(ctx, "upload filters", len(distinct), func(ctx context.Context, i int) error {
		return b.c.uploadFilter(ctx, distinct[i])
	})
}

func (ps *pollers) add(ctx context.Context, b *bench, users []*user, since []string, deliver func(delivery)) {
	for i, u := range users {
		p := &poller{c: b.c, u: u, since: since[i], timeout: b.opt.PollTimeout, deliver: deliver, errs: b.errs,
			answers: &ps.answers, started: &ps.started, limited: &ps.limited, conn: newPollConn(b.opt.Target)}
		ps.wg.Go(func() { p.run(ctx) })
	}
}

func (ps *pollers) stop() {
	ps.cancel()
	ps.wg.Wait()
}

// measureWindow is a scenario's measured phase: it ends after --duration or
// when the parent context ends (ctrl-C), and shows a progress bar over the
// duration with live figures.
func (b *bench) measureWindow(ctx context.Context, status func() string) (context.Context, func() time.Duration) {
	start := time.Now()
	mctx, cancel := context.WithTimeout(ctx, b.opt.Duration)
	stopBar := b.prog.track(b.opt.Scenario, b.opt.Duration.Milliseconds(), func() int64 {
		return min(time.Since(start), b.opt.Duration).Milliseconds()
	}, status)
	var once sync.Once
	var elapsed time.Duration
	return mctx, func() time.Duration {
		once.Do(func() {
			elapsed = min(time.Since(start), b.opt.Duration)
			cancel()
			stopBar()
		})
		return elapsed
	}
}

// uncancelled is the context of the sends of a measured phase: neither the
// end of the window nor ctrl-C cancels a send under way, which the request
// timeout still bounds. A send takes milliseconds, so stopping waits little,
// and the server is not made to handle a hang-up in the middle of a write,
// which is not the load being measured (and in Parley, at dcd776b, is a data
// race: rooms.Service.Send returns eventID while the writer may still set it).
func uncancelled(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// setupError wraps a setup failure with the hint it most often needs.
func setupError(err error) error {
	var se *statusError
	switch {
	case errors.As(err, &se) && se.Status == 403:
		return fmt.Errorf("setup: %w (is registration open, or is --shared-secret right?)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("setup: %w (raise --setup-timeout?)", err)
	}
	return fmt.Errorf("setup: %w", err)
}
