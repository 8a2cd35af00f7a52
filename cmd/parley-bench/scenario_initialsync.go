package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// runInitialSync times what a client's first start costs: one user in R
// rooms with H messages each runs initial syncs (no since token, Element's
// lazy-loading filter) one after another for --duration.
func runInitialSync(ctx context.Context, b *bench) (*report, error) {
	o := b.opt
	rep := newReport(o, map[string]any{"rooms": o.Rooms, "history": o.History, "duration": o.Duration.String()})
	setupStart := time.Now()
	reader, err := b.setupHistory(ctx)
	setup := time.Since(setupStart)
	if err != nil {
		return nil, setupError(err)
	}

	times := newHistogram()
	var runs, lastBytes atomic.Int64 // read by the progress bar too
	var lastRooms, lastEvents, totalBytes int64
	mctx, end := b.measureWindow(ctx, func() string {
		return fmt.Sprintf("%d syncs, last %d bytes", runs.Load(), lastBytes.Load())
	})
	// A sync under way when the window closes is let finish (see runSend),
	// and the first always runs, so there is at least one figure.
	start := time.Now()
	for ctx.Err() == nil && (runs.Load() == 0 || mctx.Err() == nil) {
		t0 := time.Now()
		body, err := b.c.do(ctx, b.c.requests, "GET", b.c.syncPath("", initialSyncFilter, 0), reader.token, nil)
		if err != nil {
			if ctx.Err() == nil {
				b.errs.add(err)
				sleepCtx(mctx, 100*time.Millisecond)
			}
			if mctx.Err() != nil {
				break
			}
			continue
		}
		times.record(time.Since(t0))
		runs.Add(1)
		lastBytes.Store(int64(len(body)))
		totalBytes += int64(len(body))
		lastRooms, lastEvents = countTimeline(body)
	}
	end()
	elapsed := time.Since(start)

	rep.finish(setup, elapsed, b.errs)
	n := runs.Load()
	rep.Counts["syncs"] = n
	rep.Counts["response_bytes"] = lastBytes.Load()
	rep.Counts["joined_rooms"] = lastRooms
	rep.Counts["timeline_events"] = lastEvents
	rep.rate("syncs", n)
	if n > 0 {
		rep.Values["mean_response_bytes"] = round(float64(totalBytes)/float64(n), 0)
	}
	rep.Latency["initial_sync"] = times.summary()
	if lastRooms != int64(o.Rooms) && n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the initial sync listed %d joined rooms, want %d", lastRooms, o.Rooms))
	}
	return rep, nil
}

// setupHistory registers the reader, has it create the rooms and fills each
// with --history messages (sent concurrently across rooms).
func (b *bench) setupHistory(ctx context.Context) (*user, error) {
	sctx, cancel := b.setupContext(ctx)
	defer cancel()
	users, err := b.registerUsers(sctx, "r", 1)
	if err != nil {
		return nil, err
	}
	reader := users[0]
	rooms, err := b.createRooms(sctx, reader, b.opt.Rooms)
	if err != nil {
		return nil, err
	}
	err = b.parallel(sctx, "history", len(rooms)*b.opt.History, func(ctx context.Context, i int) error {
		return b.c.send(ctx, reader, rooms[i%len(rooms)], b.ids.Add(1), time.Now())
	})
	return reader, err
}

// countTimeline counts the joined rooms and their timeline events in a sync
// answer, to check that the answer is what it should be.
func countTimeline(body []byte) (rooms, events int64) {
	gjson.GetBytes(body, "rooms.join").ForEach(func(_, room gjson.Result) bool {
		rooms++
		events += int64(len(room.Get("timeline.events").Array()))
		return true
	})
	return rooms, events
}
