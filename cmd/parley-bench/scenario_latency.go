package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxInFlightSends bounds the open-loop sends outstanding at once. Past it
// the tool, not the server, would be the bottleneck; the schedule then skips
// a message and counts it, rather than quietly turning into a closed loop.
const maxInFlightSends = 10000

// runLatency measures send-to-delivery latency under a fixed offered load:
// U users hold long-polls in M rooms while senders post at R messages/s on
// a schedule that does not wait for answers (open loop), so a slow server
// cannot slow the load down and hide its own latency. Each message carries
// its scheduled send time; a delivery's latency is its receipt by a poller
// minus that time.
func runLatency(ctx context.Context, b *bench) (*report, error) {
	o := b.opt
	rep := newReport(o, map[string]any{"users": o.Users, "senders": o.Senders, "rooms": o.Rooms,
		"rate": o.Rate, "duration": o.Duration.String()})
	setupStart := time.Now()
	sctx, cancelSetup := b.setupContext(ctx)
	defer cancelSetup()
	l, err := b.setupLatency(sctx)
	if err != nil {
		return nil, setupError(err)
	}
	toDelivery := newHistogram()
	var delivered atomic.Int64
	ps, err := b.startPollers(ctx, sctx, l.pollers, l.since, func(d delivery) {
		toDelivery.record(d.received.Sub(d.sent))
		delivered.Add(1)
	})
	setup := time.Since(setupStart)
	if err != nil {
		return nil, setupError(err)
	}
	defer ps.stop()

	ack := newHistogram()
	var scheduled, acked, expected, late, skipped atomic.Int64
	mctx, end := b.measureWindow(ctx, func() string {
		return fmt.Sprintf("%d acked, %d delivered, %d errors", acked.Load(), delivered.Load(), b.errs.total())
	})
	// Sends outlive the window by up to --drain, so the last ones scheduled
	// are acknowledged rather than cancelled; only a server that is still
	// behind after that has its sends cancelled.
	sendCtx, cancelSends := context.WithCancel(uncancelled(ctx))
	defer cancelSends()
	var sends sync.WaitGroup
	inFlight := make(chan struct{}, maxInFlightSends)
	interval := time.Duration(float64(time.Second) / o.Rate)
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= o.Duration {
			break
		}
		if wait := time.Until(due); wait > 0 {
			sleepCtx(mctx, wait)
		} else if wait < -time.Millisecond {
			late.Add(1) // the tool itself fell behind the schedule
		}
		if mctx.Err() != nil {
			break
		}
		scheduled.Add(1)
		select {
		case inFlight <- struct{}{}:
		default:
			skipped.Add(1)
			continue
		}
		sender, room := l.senders[i%len(l.senders)], i%len(l.rooms)
		sends.Go(func() {
			defer func() { <-inFlight }()
			err := b.c.send(sendCtx, sender, l.rooms[room], b.ids.Add(1), due)
			switch {
			case err == nil:
				ack.record(time.Since(due))
				acked.Add(1)
				expected.Add(int64(l.members[room]))
			case sendCtx.Err() == nil:
				b.errs.add(err)
			}
		})
	}
	<-mctx.Done()
	elapsed := end()
	b.drain(ctx, &sends, cancelSends, func() bool { return delivered.Load() >= expected.Load() })
	ps.stop()

	rep.finish(setup, elapsed, b.errs)
	rep.Counts["scheduled_sends"] = scheduled.Load()
	rep.Counts["acked_sends"] = acked.Load()
	rep.Counts["deliveries"] = delivered.Load()
	rep.Counts["expected_deliveries"] = expected.Load()
	rep.Counts["missing_deliveries"] = max(expected.Load()-delivered.Load(), 0)
	rep.Counts["late_schedule"] = late.Load()
	rep.Counts["skipped_overload"] = skipped.Load()
	rep.Counts["polls_answered"] = ps.answers.Load()
	rep.Counts["limited_timelines"] = ps.limited.Load()
	rep.rate("scheduled_sends", scheduled.Load())
	rep.rate("acked_sends", acked.Load())
	rep.rate("deliveries", delivered.Load())
	rep.Latency["delivery"] = toDelivery.summary()
	rep.Latency["send_ack"] = ack.summary()
	if skipped.Load() > 0 || late.Load()*100 > scheduled.Load() {
		rep.Notes = append(rep.Notes, "the tool fell more than 1 ms behind its own schedule for over 1% of sends "+
			"(late_schedule, skipped_overload): the figures include the tool's own delay")
	}
	return rep, nil
}

// latencyLayout is who polls and sends where.
type latencyLayout struct {
	pollers []*user
	since   []string
	senders []*user
	rooms   []string
	members []int // pollers per room
}

// setupLatency registers the pollers and senders; the first sender creates
// the rooms, every sender joins every room, and poller j joins room j mod M.
func (b *bench) setupLatency(ctx context.Context) (*latencyLayout, error) {
	o := b.opt
	l := &latencyLayout{members: make([]int, o.Rooms)}
	var err error
	if l.senders, err = b.registerUsers(ctx, "s", o.Senders); err != nil {
		return nil, err
	}
	if l.pollers, err = b.registerUsers(ctx, "u", o.Users); err != nil {
		return nil, err
	}
	if l.rooms, err = b.createRooms(ctx, l.senders[0], o.Rooms); err != nil {
		return nil, err
	}
	var joins []membership
	for _, s := range l.senders[1:] {
		for _, r := range l.rooms {
			joins = append(joins, membership{s, r})
		}
	}
	for j, p := range l.pollers {
		joins = append(joins, membership{p, l.rooms[j%o.Rooms]})
		l.members[j%o.Rooms]++
	}
	if err := b.joinAll(ctx, joins); err != nil {
		return nil, err
	}
	l.since, err = b.initialSyncs(ctx, l.pollers)
	return l, err
}

// drain waits up to --drain for the sends still under way, then for
// delivered() to hold, so that messages sent at the end of the window are
// counted; sends still under way after that are cancelled. After ctrl-C it
// waits for the sends (see uncancelled) but not for deliveries.
func (b *bench) drain(ctx context.Context, sends *sync.WaitGroup, cancelSends context.CancelFunc, delivered func() bool) {
	deadline := time.Now().Add(b.opt.Drain)
	sent := make(chan struct{})
	go func() {
		sends.Wait()
		close(sent)
	}()
	timer := time.NewTimer(b.opt.Drain)
	defer timer.Stop()
	select {
	case <-sent:
	case <-timer.C:
		cancelSends()
		<-sent
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	waitFor(dctx, delivered)
}
