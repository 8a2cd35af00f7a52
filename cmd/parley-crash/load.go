package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// outcomeLog writes every send attempt and every kill as a JSON line to
// sends.log in the work directory (kept when a run fails, as evidence) and
// tallies the outcomes for the report.
type outcomeLog struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	start  time.Time
	counts map[string]int
	closed bool
}

func newOutcomeLog(path string, start time.Time) (*outcomeLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	return &outcomeLog{f: f, w: bufio.NewWriter(f), start: start, counts: map[string]int{}}, nil
}

func (l *outcomeLog) line(v map[string]any) {
	v["ms"] = time.Since(l.start).Milliseconds()
	raw, _ := json.Marshal(v)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(append(raw, '\n'))
}

func (l *outcomeLog) attempt(r *sendRecord, res sendResult, took time.Duration) {
	l.mu.Lock()
	l.counts[res.outcome]++
	l.mu.Unlock()
	v := map[string]any{"client": r.client, "seq": r.seq, "room": r.room.id, "device": r.dev.id, "txn": r.txn,
		"attempt": r.attempts, "outcome": res.outcome, "status": res.status, "event_id": res.eventID, "took_ms": took.Milliseconds()}
	if res.err != nil {
		v["error"] = res.err.Error()
	}
	l.line(v)
}

func (l *outcomeLog) tally() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.counts)
}

// close flushes and closes the log; later calls do nothing.
func (l *outcomeLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.w.Flush(); err != nil {
		l.f.Close()
		return fmt.Errorf("send log: %w", err)
	}
	return l.f.Close()
}

// sendAll runs one goroutine per client. Each sends its messages one after
// the other, so a client's messages in one room have a known order, and
// retries an unacknowledged message with the same txnId from the same
// device until it is acknowledged, refused three times with a 4xx, or ctx
// ends. acked counts acknowledgements for the killer.
func sendAll(ctx context.Context, a *api, sc *scenario, log *outcomeLog, acked *atomic.Int64) {
	var wg sync.WaitGroup
	for _, recs := range sc.sends {
		wg.Go(func() { sendLoop(ctx, a, recs, log, acked) })
	}
	wg.Wait()
}

func sendLoop(ctx context.Context, a *api, recs []*sendRecord, log *outcomeLog, acked *atomic.Int64) {
	for _, r := range recs {
		backoff, rejects := 10*time.Millisecond, 0
		for {
			if ctx.Err() != nil {
				return
			}
			began := time.Now()
			res := a.sendMessage(ctx, r.dev, r.room.id, r.txn, r.body)
			r.attempts++
			log.attempt(r, res, time.Since(began))
			if res.outcome == "ok" {
				r.eventID = res.eventID
				acked.Add(1)
				break
			}
			if r.firstFail == 0 {
				r.firstFail = time.Now().UnixMilli()
			}
			if res.status >= 400 && res.status < 500 && res.status != 429 {
				if rejects++; rejects >= 3 {
					r.rejected = true
					break
				}
			}
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 200*time.Millisecond)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// killPlan spreads the kills over the sending: kill k happens once the
// acknowledged count passes a random point in the k-th of `kills` equal
// slices of 5%..90% of the sends, plus up to 3 ms, so every kill lands
// while clients are mid-flight and none is wasted on a server that is
// still restarting.
func killPlan(cfg config) []int64 {
	rng := rand.New(rand.NewPCG(cfg.Seed, 2))
	out := make([]int64, cfg.Kills)
	for k := range out {
		frac := 0.05 + 0.85*(float64(k)+rng.Float64())/float64(cfg.Kills)
		out[k] = int64(frac * float64(cfg.Sends))
	}
	slices.Sort(out)
	return out
}

// killer SIGKILLs and restarts the server at the planned points. It stops
// early when the sending is over (done closes) and returns how many kills
// it made and the restart times.
func killer(ctx context.Context, cfg config, srv *server, log *outcomeLog, acked *atomic.Int64,
	done <-chan struct{}, progress func(string, ...any)) (int, []time.Duration, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	var restarts []time.Duration
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for k, at := range killPlan(cfg) {
		for acked.Load() < at {
			select {
			case <-done:
				return k, restarts, nil
			case <-ctx.Done():
				return k, restarts, nil
			case <-tick.C:
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		select {
		case <-done: // too late: this kill would hit an idle server
			return k, restarts, nil
		default:
		}
		n := acked.Load()
		if err := srv.kill(); err != nil {
			return k, restarts, err
		}
		log.line(map[string]any{"kill": k + 1, "acked": n})
		took, err := srv.start(ctx)
		if err != nil {
			return k + 1, restarts, fmt.Errorf("restart after kill %d: %w", k+1, err)
		}
		restarts = append(restarts, took)
		log.line(map[string]any{"restarted": k + 1, "took_ms": took.Milliseconds()})
		progress("kill %d at %d acknowledged; ready again in %v", k+1, n, took.Round(time.Millisecond))
	}
	return cfg.Kills, restarts, nil
}
