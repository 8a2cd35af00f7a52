package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// runSend is the closed-loop write benchmark: each of N senders sends into
// its room, waits for the acknowledgement, and sends again. The acknowledged
// rate is the server's write throughput at that concurrency; the latency is
// what one client waits per message.
func runSend(ctx context.Context, b *bench) (*report, error) {
	o := b.opt
	rep := newReport(o, map[string]any{"senders": o.Senders, "rooms": o.Rooms, "duration": o.Duration.String()})
	setupStart := time.Now()
	senders, rooms, err := b.setupSenders(ctx, o.Senders, o.Rooms)
	setup := time.Since(setupStart)
	if err != nil {
		return nil, setupError(err)
	}

	ack := newHistogram()
	var acked atomic.Int64
	mctx, end := b.measureWindow(ctx, func() string {
		return fmt.Sprintf("%d acked, %d errors", acked.Load(), b.errs.total())
	})
	// A send under way when the window closes is let finish and counted:
	// the window is from the first send to the last answer.
	sendCtx := uncancelled(ctx)
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range senders {
		room := rooms[i%len(rooms)]
		wg.Go(func() {
			for mctx.Err() == nil {
				t0 := time.Now()
				if err := b.c.send(sendCtx, s, room, b.ids.Add(1), t0); err != nil {
					if ctx.Err() == nil {
						b.errs.add(err)
						sleepCtx(mctx, 10*time.Millisecond)
					}
					continue
				}
				ack.record(time.Since(t0))
				acked.Add(1)
			}
		})
	}
	<-mctx.Done()
	end()
	wg.Wait()
	elapsed := time.Since(start)

	rep.finish(setup, elapsed, b.errs)
	rep.Counts["acked_sends"] = acked.Load()
	rep.rate("acked_sends", acked.Load())
	rep.Latency["send_ack"] = ack.summary()
	return rep, nil
}

// setupSenders registers n senders and has the first create the rooms; sender
// i joins room i mod rooms. It returns the senders and the room IDs.
func (b *bench) setupSenders(ctx context.Context, n, nrooms int) ([]*user, []string, error) {
	sctx, cancel := b.setupContext(ctx)
	defer cancel()
	senders, err := b.registerUsers(sctx, "s", n)
	if err != nil {
		return nil, nil, err
	}
	rooms, err := b.createRooms(sctx, senders[0], nrooms)
	if err != nil {
		return nil, nil, err
	}
	var joins []membership
	for i, s := range senders[1:] {
		joins = append(joins, membership{s, rooms[(i+1)%nrooms]})
	}
	if err := b.joinAll(sctx, joins); err != nil {
		return nil, nil, err
	}
	return senders, rooms, nil
}
