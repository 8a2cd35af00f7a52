package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// sendFunc sends bench message id from s to where a fan-out scenario's
// members listen, and returns once the server acknowledges it.
type sendFunc func(ctx context.Context, s *user, id uint64, sent time.Time) error

// fanoutSetup makes a fan-out scenario's senders and members and says how
// a message reaches the members.
type fanoutSetup func(ctx context.Context) (senders, members []*user, send sendFunc, err error)

// runFanout measures delivery to a big room: K members hold long-polls in
// one room and each sender sends, waits until the last member's sync has the
// message, and sends the next. The time to the last delivery is what the
// slowest member of a big group waits.
func runFanout(ctx context.Context, b *bench) (*report, error) {
	return runFanoutTo(ctx, b, b.setupFanout)
}

// runChannelFanout is runFanout for a broadcast channel: the K members
// follow one channel and its owner posts (issue 12's 2,000 long-polling
// followers woken by one post). Each post is read once and reaches the
// followers through the io.parley.channels section of their syncs.
func runChannelFanout(ctx context.Context, b *bench) (*report, error) {
	return runFanoutTo(ctx, b, b.setupChannelFanout)
}

// runFanoutTo runs a fan-out scenario on what prepare makes.
func runFanoutTo(ctx context.Context, b *bench, prepare fanoutSetup) (*report, error) {
	o := b.opt
	rep := newReport(o, map[string]any{"members": o.Members, "senders": o.Senders, "duration": o.Duration.String()})
	setupStart := time.Now()
	sctx, cancelSetup := b.setupContext(ctx)
	defer cancelSetup()
	senders, members, send, err := prepare(sctx)
	var since []string
	if err == nil {
		since, err = b.initialSyncs(sctx, members)
	}
	if err != nil {
		return nil, setupError(err)
	}
	tr := newFanoutTracker(len(members))
	ps, err := b.startPollers(ctx, sctx, members, since, tr.deliver)
	setup := time.Since(setupStart)
	if err != nil {
		return nil, setupError(err)
	}
	defer ps.stop()
	if err := b.warmFanout(sctx, senders[0], send, tr); err != nil {
		return nil, setupError(err)
	}
	setup = time.Since(setupStart)

	var acked, incomplete atomic.Int64
	var cpu0, own0 time.Duration
	if o.PID > 0 {
		if cpu0, err = readCPU(o.PID); err != nil {
			return nil, err
		}
		// The tool's own CPU too: on a small machine it competes with
		// the server, and its cost per delivery is of the same order.
		if own0, err = readCPU(os.Getpid()); err != nil {
			return nil, err
		}
	}
	deliveries0 := tr.deliveries.Load()
	answers0, limited0 := ps.answers.Load(), ps.limited.Load() // the warm-up's are not the window's
	profiled := func() error { return nil }
	if o.ServerProfile != "" {
		profiled = serverProfile(ctx, o.ServerPprof, o.ServerProfile, o.Duration)
	}
	stopSelf, err := selfProfile(o.CPUProfile)
	if err != nil {
		return nil, err
	}
	mctx, end := b.measureWindow(ctx, func() string {
		return fmt.Sprintf("%d complete, %d deliveries, %d errors", tr.complete.Load(), tr.deliveries.Load(), b.errs.total())
	})
	sendCtx := uncancelled(ctx)
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() {
			for mctx.Err() == nil {
				id, t0 := b.ids.Add(1), time.Now()
				done := tr.expect(id, t0) // before the send: a delivery may beat the acknowledgement
				if err := send(sendCtx, s, id, t0); err != nil {
					tr.forget(id)
					if ctx.Err() == nil {
						b.errs.add(err)
						sleepCtx(mctx, 10*time.Millisecond)
					}
					continue
				}
				acked.Add(1)
				if !b.awaitAll(ctx, mctx, done) {
					tr.forget(id)
					incomplete.Add(1)
				}
				if o.Pause > 0 {
					sleepCtx(mctx, o.Pause)
				}
			}
		})
	}
	<-mctx.Done()
	end()
	wg.Wait() // the last messages are let finish, up to --drain
	if err := stopSelf(); err != nil {
		b.errs.add(err)
	}
	elapsed := time.Since(start)
	if o.PID > 0 {
		cpu1, err := readCPU(o.PID)
		if err != nil {
			return nil, err
		}
		own1, err := readCPU(os.Getpid())
		if err != nil {
			return nil, err
		}
		if n := tr.deliveries.Load() - deliveries0; n > 0 {
			rep.Values["server_cpu_us_per_delivery"] = float64((cpu1 - cpu0).Microseconds()) / float64(n)
			rep.Values["bench_cpu_us_per_delivery"] = float64((own1 - own0).Microseconds()) / float64(n)
		}
	}
	ps.stop()
	if err := profiled(); err != nil {
		b.errs.add(err) // the figures stand without the profile
	}

	rep.finish(setup, elapsed, b.errs)
	rep.Counts["acked_sends"] = acked.Load()
	rep.Counts["complete_messages"] = tr.complete.Load()
	rep.Counts["incomplete_messages"] = incomplete.Load()
	rep.Counts["deliveries"] = tr.deliveries.Load()
	rep.Counts["polls_answered"] = ps.answers.Load() - answers0
	rep.Counts["limited_timelines"] = ps.limited.Load() - limited0
	rep.rate("complete_messages", tr.complete.Load())
	rep.rate("deliveries", tr.deliveries.Load())
	rep.Latency["time_to_last_delivery"] = tr.toLast.summary()
	rep.Latency["delivery"] = tr.each.summary()
	return rep, nil
}

// warmFanout sends --warmup messages, each awaited by every member, and
// then clears what they recorded. The members' first long-polls reach the
// server while the first message is under way, so without it that message
// measured the server's start-up (every member's first token, filter and
// member-event reads at once) instead of a fan-out.
func (b *bench) warmFanout(ctx context.Context, s *user, send sendFunc, tr *fanoutTracker) error {
	for range b.opt.Warmup {
		id, t0 := b.ids.Add(1), time.Now()
		done := tr.expect(id, t0)
		if err := send(ctx, s, id, t0); err != nil {
			return fmt.Errorf("warm-up message: %w", err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("warm-up message not delivered to every member: %w", ctx.Err())
		}
	}
	tr.reset()
	return nil
}

// awaitAll waits for done; once the window has ended it waits at most
// --drain more. It reports whether every member got the message.
func (b *bench) awaitAll(ctx, window context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-window.Done():
	}
	dctx, cancel := context.WithTimeout(ctx, b.opt.Drain)
	defer cancel()
	select {
	case <-done:
		return true
	case <-dctx.Done():
		return false
	}
}

// setupFanout registers the senders and members; the first sender creates
// the room and everyone else joins it.
func (b *bench) setupFanout(ctx context.Context) (senders, members []*user, send sendFunc, err error) {
	if senders, err = b.registerUsers(ctx, "s", b.opt.Senders); err != nil {
		return nil, nil, nil, err
	}
	if members, err = b.registerUsers(ctx, "m", b.opt.Members); err != nil {
		return nil, nil, nil, err
	}
	rooms, err := b.createRooms(ctx, senders[0], 1)
	if err != nil {
		return nil, nil, nil, err
	}
	room := rooms[0]
	var joins []membership
	for _, u := range slices.Concat(senders[1:], members) {
		joins = append(joins, membership{u, room})
	}
	send = func(ctx context.Context, s *user, id uint64, sent time.Time) error {
		return b.c.send(ctx, s, room, id, sent)
	}
	return senders, members, send, b.joinAll(ctx, joins)
}

// setupChannelFanout registers the senders and members; the first sender
// creates a channel with the others as its editors, and every member
// follows it.
func (b *bench) setupChannelFanout(ctx context.Context) (senders, members []*user, send sendFunc, err error) {
	if senders, err = b.registerUsers(ctx, "s", b.opt.Senders); err != nil {
		return nil, nil, nil, err
	}
	if members, err = b.registerUsers(ctx, "m", b.opt.Members); err != nil {
		return nil, nil, nil, err
	}
	var editors []string
	for _, s := range senders[1:] {
		editors = append(editors, s.id)
	}
	channel, err := b.c.createChannel(ctx, senders[0], b.opt.UserPrefix+" channel", editors)
	if err != nil {
		return nil, nil, nil, err
	}
	err = b.parallel(ctx, "follow the channel", len(members), func(ctx context.Context, i int) error {
		return b.c.follow(ctx, members[i], channel)
	})
	send = func(ctx context.Context, s *user, id uint64, sent time.Time) error {
		return b.c.post(ctx, s, channel, id, sent)
	}
	return senders, members, send, err
}

// fanoutTracker counts, per message in flight, the members still waiting
// for it.
type fanoutTracker struct {
	members int
	mu      sync.Mutex
	pending map[uint64]*pendingMessage // guarded by mu

	each       *histogram // send to each member's delivery
	toLast     *histogram // send to the last member's delivery
	deliveries atomic.Int64
	complete   atomic.Int64
}

type pendingMessage struct {
	sent time.Time
	left int
	done chan struct{} // closed when left reaches 0
}

func newFanoutTracker(members int) *fanoutTracker {
	return &fanoutTracker{members: members, pending: map[uint64]*pendingMessage{}, each: newHistogram(), toLast: newHistogram()}
}

func (t *fanoutTracker) expect(id uint64, sent time.Time) <-chan struct{} {
	p := &pendingMessage{sent: sent, left: t.members, done: make(chan struct{})}
	t.mu.Lock()
	t.pending[id] = p
	t.mu.Unlock()
	return p.done
}

// reset forgets what the warm-up recorded; no message is in flight.
func (t *fanoutTracker) reset() {
	t.mu.Lock()
	t.each, t.toLast = newHistogram(), newHistogram()
	t.mu.Unlock()
	t.deliveries.Store(0)
	t.complete.Store(0)
}

func (t *fanoutTracker) forget(id uint64) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

// deliver is called by the pollers. A message already forgotten (failed or
// timed out) still counts as a delivery but not towards latency.
func (t *fanoutTracker) deliver(d delivery) {
	t.deliveries.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[d.id]
	if p == nil {
		return
	}
	t.each.record(d.received.Sub(p.sent))
	p.left--
	if p.left == 0 {
		t.toLast.record(d.received.Sub(p.sent))
		t.complete.Add(1)
		delete(t.pending, d.id)
		close(p.done)
	}
}
