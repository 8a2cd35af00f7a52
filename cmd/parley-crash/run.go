package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// run carries out one scenario and returns its report. An error means there
// is no verdict (build, setup, restart or time-out trouble); a report with
// Broken() true means the server broke a promise. The work directory
// (binary, data, server.log, sends.log) and the PostgreSQL database are
// removed afterwards unless something went wrong, so they can be inspected.
func run(ctx context.Context, cfg config) (rep *report, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("run exceeded --timeout %v", cfg.Timeout))
	defer cancelTimeout()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "parley-crash: "+format+"\n", args...)
		}
	}

	work, err := os.MkdirTemp("", "parley-crash-*")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	// Keep the work dir and database once a server has run on them, until
	// the run has a verdict; then only if a promise is broken.
	keep := false
	dbName := ""
	defer func() {
		switch {
		case !keep:
			os.RemoveAll(work)
		case err != nil && rep == nil:
			kept := "work dir " + work
			if dbName != "" {
				kept += ", database " + dbName
			}
			err = fmt.Errorf("%w (kept for inspection: %s)", err, kept)
		}
	}()

	bin := cfg.Parley
	if bin == "" {
		progress("building ./cmd/parley (without -race)")
		if bin, err = buildParley(ctx, work); err != nil {
			return nil, err
		}
	}
	dbURL := ""
	if cfg.Store == "postgres" {
		var cleanup func(bool)
		if dbURL, dbName, cleanup, err = createDatabase(ctx, cfg.DatabaseURL, cfg.Seed); err != nil {
			return nil, err
		}
		defer func() { cleanup(keep) }()
	}
	srv, err := newServer(bin, work, dbURL)
	if err != nil {
		return nil, err
	}
	keep = true
	defer srv.kill()
	if _, err := srv.start(ctx); err != nil {
		return nil, err
	}
	go func() { // a crash nobody asked for ends the run
		select {
		case err := <-srv.died:
			abort(err)
		case <-ctx.Done():
		}
	}()

	a := newAPI(srv.url(), cfg.SendTimeout)
	defer a.close()
	sc := planLayout(cfg)
	if err := sc.setup(ctx, a); err != nil {
		return nil, err
	}
	sc.planSends(cfg)
	progress("%s: %d users with %d devices in %d rooms (%d DMs), ready after %v",
		cfg.Store, len(sc.users), sc.devices(), len(sc.rooms), sc.dms(), time.Since(began).Round(time.Millisecond))

	log, err := newOutcomeLog(filepath.Join(work, "sends.log"), began)
	if err != nil {
		return nil, err
	}
	defer log.close()
	// Keep a fifth of the time (at least) for the final restart and the check.
	sendCtx, stopSending := context.WithDeadline(ctx, began.Add(cfg.Timeout*4/5))
	defer stopSending()
	var acked atomic.Int64
	done := make(chan struct{})
	type killResult struct {
		kills    int
		restarts []time.Duration
	}
	killed := make(chan killResult, 1)
	go func() {
		k, restarts, err := killer(ctx, cfg, srv, log, &acked, done, progress)
		if err != nil {
			abort(err)
		}
		killed <- killResult{k, restarts}
	}()
	progress("sending %d messages from %d clients, %d kills planned", cfg.Sends, cfg.Clients, cfg.Kills)
	sendBegan := time.Now()
	sendAll(sendCtx, a, sc, log, &acked)
	sendTook := time.Since(sendBegan)
	close(done)
	kr := <-killed
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	progress("sending over after %v: %d of %d acknowledged", sendTook.Round(time.Millisecond), acked.Load(), cfg.Sends)

	// One more kill right after the last acknowledgement: what was
	// acknowledged last must survive a crash too, not only a read.
	if err := srv.kill(); err != nil {
		return nil, err
	}
	log.line(map[string]any{"kill": "final", "acked": acked.Load()})
	took, err := srv.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("restart after the final kill: %w", err)
	}
	restarts := append(kr.restarts, took)
	progress("final kill; ready again in %v; reading every room", took.Round(time.Millisecond))

	views, err := readViews(ctx, a, sc)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	rep = &report{
		Store: cfg.Store, Seed: cfg.Seed, Clients: cfg.Clients, Devices: sc.devices(),
		Rooms: len(sc.rooms), DMs: sc.dms(), Sends: cfg.Sends,
		Kills: kr.kills, KillsPlanned: cfg.Kills, FinalKill: true, Restarts: len(restarts),
		SlowestRestart: slices.Max(restarts).Seconds(),
		Outcomes:       log.tally(),
		SendSeconds:    sendTook.Seconds(),
	}
	check(sc, views, rep)
	for _, n := range rep.Outcomes {
		rep.Attempts += n
	}
	rep.SendsPerSecond = float64(rep.Acknowledged) / sendTook.Seconds()
	rep.WallSeconds = time.Since(began).Seconds()
	if err := log.close(); err != nil {
		return rep, err
	}
	keep = rep.Broken()
	if keep {
		rep.WorkDir, rep.Database = work, dbName
	}
	// A verdict on what was sent stands either way, but a run that did not
	// do all it was asked to is not a pass.
	var short []string
	if rep.Kills < cfg.Kills {
		short = append(short, fmt.Sprintf("only %d of %d kills happened while messages were being sent", rep.Kills, cfg.Kills))
	}
	if rep.NotSent > 0 {
		short = append(short, fmt.Sprintf("%d messages were never sent before the sending deadline (4/5 of --timeout %v)", rep.NotSent, cfg.Timeout))
	}
	if len(short) > 0 {
		return rep, fmt.Errorf("incomplete run: %s", strings.Join(short, "; "))
	}
	return rep, nil
}
