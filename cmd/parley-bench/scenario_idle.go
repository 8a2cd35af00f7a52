package main

import (
	"context"
	"fmt"
	"time"
)

// runIdle holds C long-polls open against a quiet server. The polls are
// opened in --steps equal steps over --duration; with --pid, the server's
// RSS is read at the end of each step, and the least-squares slope of RSS
// over held polls is the memory one waiting client costs the server. The
// slope, unlike one RSS divided by C, leaves out what the server held
// before.
func runIdle(ctx context.Context, b *bench) (*report, error) {
	o := b.opt
	rep := newReport(o, map[string]any{"conns": o.Conns, "users": o.Users, "steps": o.Steps,
		"poll_timeout": o.PollTimeout.String(), "duration": o.Duration.String()})
	if o.PID != 0 {
		rep.Params["pid"] = o.PID
		if _, err := readRSS(o.PID); err != nil { // fail before a long setup, not after it
			return nil, err
		}
	}
	setupStart := time.Now()
	sctx, cancelSetup := b.setupContext(ctx)
	defer cancelSetup()
	users, err := b.registerUsers(sctx, "i", o.Users)
	var since []string
	if err == nil {
		since, err = b.initialSyncs(sctx, users)
	}
	setup := time.Since(setupStart)
	if err != nil {
		return nil, setupError(err)
	}
	if o.PID != 0 {
		if rss, err := readRSS(o.PID); err == nil {
			rep.Values["rss_before_polls_bytes"] = float64(rss)
		}
	}

	pctx, cancelPolls := context.WithCancel(ctx)
	ps := &pollers{cancel: cancelPolls}
	defer ps.stop()
	mctx, end := b.measureWindow(ctx, func() string {
		return fmt.Sprintf("%d polls held, %d answered, %d errors", ps.started.Load(), ps.answers.Load(), b.errs.total())
	})
	hold := o.Duration / time.Duration(o.Steps)
	start := time.Now()
	var slowestRamp time.Duration
	for step := 1; step <= o.Steps; step++ {
		from, to := int(ps.started.Load()), o.Conns*step/o.Steps
		stepStart := time.Now()
		var stepUsers []*user
		var stepSince []string
		for i := from; i < to; i++ { // poll i is user i mod U's
			stepUsers, stepSince = append(stepUsers, users[i%len(users)]), append(stepSince, since[i%len(users)])
		}
		ps.add(pctx, b, stepUsers, stepSince, nil)
		if waitFor(mctx, func() bool { return ps.started.Load() == int64(to) }) != nil {
			break
		}
		slowestRamp = max(slowestRamp, time.Since(stepStart))
		sleepCtx(mctx, time.Until(start.Add(time.Duration(step)*hold)))
		if mctx.Err() != nil && step < o.Steps {
			break // cut short: a partial step's RSS would skew the slope
		}
		if o.PID != 0 {
			rss, err := readRSS(o.PID)
			if err != nil {
				b.errs.add(err)
				break
			}
			rep.RSS = append(rep.RSS, rssPoint{Polls: to, RSSBytes: rss})
		}
	}
	elapsed := end()
	held := ps.started.Load()
	ps.stop()

	rep.finish(setup, elapsed, b.errs)
	rep.Counts["polls_held"] = held
	rep.Counts["polls_answered"] = ps.answers.Load()
	rep.Values["slowest_step_ramp_seconds"] = round(slowestRamp.Seconds(), 3)
	if o.PID == 0 {
		rep.Notes = append(rep.Notes, "no --pid: the server's memory was not read")
		return rep, nil
	}
	perPoll, intercept, err := slope(rep.RSS)
	if err != nil {
		rep.Notes = append(rep.Notes, "no RSS slope: "+err.Error())
		return rep, nil
	}
	rep.Values["bytes_per_held_poll"] = round(perPoll, 0)
	rep.Values["rss_intercept_bytes"] = round(intercept, 0)
	return rep, nil
}
