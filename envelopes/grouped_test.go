package envelopes

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkOpen refuses claims on closed envelopes, as Service's check does.
func checkOpen(_ int, e storage.RedEnvelope) error {
	if e.State != "open" || e.RemainingCount < 1 {
		return ErrEmpty
	}
	return nil
}

// ledgerOK checks that all balances and all postings sum to zero and that
// each envelope's escrow holds exactly its remaining amount.
func ledgerOK(t *testing.T, st *storage.Store, ids ...string) {
	t.Helper()
	ctx := context.Background()
	bal, post, err := st.LedgerSums(ctx)
	if err != nil || bal != 0 || post != 0 {
		t.Fatalf("ledger sums = %d, %d, %v; want 0, 0", bal, post, err)
	}
	for _, id := range ids {
		e, err := st.EnvelopeHead(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := st.Balance(ctx, "escrow:"+id); b != e.Remaining {
			t.Fatalf("escrow of %s = %d, remaining %d: want them equal", id, b, e.Remaining)
		}
	}
}

// TestClaimEnvelopesBatch: one batch over two envelopes, with a repeated
// claimer, claims past the last share and an unknown envelope, is decided
// in order and written in one transaction: exactly count claims win per
// envelope, they sum to the total, the repeat replays the first amount,
// the refusals write nothing, and a later batch replays stored claims.
func TestClaimEnvelopesBatch(t *testing.T) {
	for name, st := range benchStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ids := makeEnvelopes(t, st, "batch", 2, 3) // totals 30, count 3
			a, b := ids[0], ids[1]
			var reqs []storage.ClaimRequest
			for _, p := range [][2]string{{a, "@1:b"}, {a, "@2:b"}, {a, "@1:b"}, {b, "@1:b"}, {a, "@3:b"}, {a, "@4:b"},
				{b, "@2:b"}, {"nope", "@1:b"}, {b, "@3:b"}, {b, "@4:b"}} {
				reqs = append(reqs, storage.ClaimRequest{EnvelopeID: p[0], UserID: p[1], TS: 5})
			}
			out := make([]storage.ClaimResult, len(reqs))
			rnd := NewRand(7)
			pick := func(e storage.RedEnvelope) int64 { return Share(rnd, e.Kind, e.Remaining, e.RemainingCount) }
			if err := st.ClaimEnvelopes(ctx, reqs, checkOpen, pick, out); err != nil {
				t.Fatal(err)
			}
			sums := map[string]int64{}
			for i, r := range out {
				want := "win"
				switch i {
				case 2:
					want = "replay"
				case 5, 9:
					want = "empty"
				case 7:
					want = "notfound"
				}
				got := "win"
				switch {
				case r.Replay:
					got = "replay"
				case errors.Is(r.Err, ErrEmpty):
					got = "empty"
				case errors.Is(r.Err, storage.ErrNotFound):
					got = "notfound"
				case r.Err != nil || r.Amount < 1:
					got = fmt.Sprintf("%+v", r)
				}
				if got != want {
					t.Errorf("claim %d (%s %s): got %s, want %s", i, reqs[i].EnvelopeID, reqs[i].UserID, got, want)
				}
				if got == "win" {
					sums[reqs[i].EnvelopeID] += r.Amount
				}
			}
			if out[2].Amount != out[0].Amount {
				t.Errorf("repeated claim = %d, want the first amount %d", out[2].Amount, out[0].Amount)
			}
			if out[4].Seq != 3 || out[8].Seq != 3 {
				t.Errorf("last shares' seq = %d and %d, want 3 and 3", out[4].Seq, out[8].Seq)
			}
			if sums[a] != 30 || sums[b] != 30 {
				t.Errorf("claims sum to %d and %d, want 30 and 30", sums[a], sums[b])
			}
			ledgerOK(t, st, a, b)
			for _, id := range ids {
				e, cs, err := st.Envelope(ctx, id)
				if err != nil || e.State != "finished" || e.Remaining != 0 || len(cs) != 3 {
					t.Errorf("%s after the batch: state %s, remaining %d, %d claims, %v; want finished, 0, 3", id, e.State, e.Remaining, len(cs), err)
				}
			}
			// A later batch replays the stored claims and writes nothing.
			again := make([]storage.ClaimResult, 1)
			if err := st.ClaimEnvelopes(ctx, reqs[3:4], checkOpen, pick, again); err != nil {
				t.Fatal(err)
			}
			if !again[0].Replay || again[0].Amount != out[3].Amount {
				t.Errorf("claim again = %+v, want a replay of %d", again[0], out[3].Amount)
			}
			ledgerOK(t, st, a, b)
		})
	}
}

// gatedStore holds the first batch until released, so the test can queue
// claims behind it, and records every batch's size.
type gatedStore struct {
	*storage.Store
	gate  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	sizes []int // guarded by mu
}

func (g *gatedStore) ClaimEnvelopes(ctx context.Context, reqs []storage.ClaimRequest, check func(int, storage.RedEnvelope) error,
	pick func(storage.RedEnvelope) int64, out []storage.ClaimResult) error {
	g.once.Do(func() { <-g.gate })
	g.mu.Lock()
	g.sizes = append(g.sizes, len(reqs))
	g.mu.Unlock()
	return g.Store.ClaimEnvelopes(ctx, reqs, check, pick, out)
}

// TestGroupedClaimsOneCommit: claims that arrive while a batch commits
// wait and are then written together, in one transaction, and each is
// answered with its own amount.
func TestGroupedClaimsOneCommit(t *testing.T) {
	for name, st := range benchStores(t) {
		t.Run(name, func(t *testing.T) {
			id := makeEnvelopes(t, st, "gate", 1, 50)[0]
			gs := &gatedStore{Store: st, gate: make(chan struct{})}
			g := newGrouper(gs, NewRand(3), time.Now, 1, 0)
			res := make([]storage.ClaimResult, 50)
			errs := make([]error, 50)
			var wg sync.WaitGroup
			claim := func(i int) {
				defer wg.Done()
				res[i], _, errs[i] = g.claim(context.Background(), id, fmt.Sprintf("@u%d:b", i))
			}
			wg.Add(1)
			go claim(0)
			eventually(t, "the first claim's owner", func() bool {
				g.shards[0].mu.Lock()
				defer g.shards[0].mu.Unlock()
				return g.shards[0].running && len(g.shards[0].queue) == 0
			})
			for i := 1; i < 50; i++ {
				wg.Add(1)
				go claim(i)
			}
			eventually(t, "49 queued claims", func() bool {
				g.shards[0].mu.Lock()
				defer g.shards[0].mu.Unlock()
				return len(g.shards[0].queue) == 49
			})
			close(gs.gate)
			wg.Wait()
			var sum int64
			for i := range res {
				if errs[i] != nil || res[i].Err != nil || res[i].Replay {
					t.Fatalf("claim %d: %+v %v", i, res[i], errs[i])
				}
				sum += res[i].Amount
			}
			if sum != 500 {
				t.Errorf("claims sum to %d, want 500", sum)
			}
			if fmt.Sprint(gs.sizes) != "[1 49]" {
				t.Errorf("batches = %v, want [1 49]", gs.sizes)
			}
			if g.batches.Load() != 2 {
				t.Errorf("commits = %d, want 2", g.batches.Load())
			}
			ledgerOK(t, st, id)
		})
	}
}

// claimAnswer claims as Service.Claim does once the membership checks
// passed: through the grouper, and from the store's claim when the
// envelope is known closed (ErrEmpty in the result when there is none).
func claimAnswer(g *grouper, st *storage.Store, id, user string) (storage.ClaimResult, error) {
	res, _, err := g.claim(context.Background(), id, user)
	if errors.Is(err, errClosed) {
		a, ok, err := st.EnvelopeClaimOf(context.Background(), id, user)
		if err != nil || ok {
			return storage.ClaimResult{Amount: a, Replay: ok}, err
		}
		return storage.ClaimResult{Err: ErrEmpty}, nil
	}
	return res, err
}

// TestGroupedClaimsStorm: 400 claimers, each claiming twice, on four
// envelopes of 50 shares over two shards: exactly 50 win each envelope,
// the wins sum to the totals, every second claim returns the first amount
// and the ledger balances.
func TestGroupedClaimsStorm(t *testing.T) {
	for name, st := range benchStores(t) {
		t.Run(name, func(t *testing.T) {
			ids := makeEnvelopes(t, st, "storm", 4, 50)
			g := newGrouper(st, NewRand(5), time.Now, 2, 0)
			type answer struct {
				res [2]storage.ClaimResult
				err [2]error
			}
			out := make([]answer, 400)
			var wg sync.WaitGroup
			for i := range out {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for try := 0; try < 2; try++ {
						out[i].res[try], out[i].err[try] = claimAnswer(g, st, ids[i%4], fmt.Sprintf("@u%d:b", i))
					}
				}()
			}
			wg.Wait()
			wins := map[string]int{}
			sums := map[string]int64{}
			for i, a := range out {
				id := ids[i%4]
				switch {
				case a.err[0] == nil && a.res[0].Err == nil:
					wins[id]++
					sums[id] += a.res[0].Amount
					if a.err[1] != nil || !a.res[1].Replay || a.res[1].Amount != a.res[0].Amount {
						t.Errorf("claimer %d: retry = %+v %v, want a replay of %d", i, a.res[1], a.err[1], a.res[0].Amount)
					}
				case errors.Is(a.res[0].Err, ErrEmpty):
				default:
					t.Errorf("claimer %d: %+v %v", i, a.res[0], a.err[0])
				}
			}
			for _, id := range ids {
				if wins[id] != 50 || sums[id] != 500 {
					t.Errorf("%s: %d wins summing to %d, want 50 summing to 500", id, wins[id], sums[id])
				}
			}
			ledgerOK(t, st, ids...)
			t.Logf("%s: %d claims in %d commits", name, g.claims.Load(), g.batches.Load())
		})
	}
}

// argsHold is storage.ArgsHold that also looks into array arguments
// (PostgreSQL's batch statements take each column as one array).
func argsHold(args []driver.NamedValue, v string) bool {
	for _, a := range args {
		if xs, ok := a.Value.([]string); ok && slices.Contains(xs, v) {
			return true
		}
	}
	return storage.ArgsHold(args, v)
}

// TestGroupedClaimsFaults: when commits fail, no claim of the batch is
// acknowledged and nothing is written; a batch whose commit is durable but
// reported failed is retried claim by claim, which finds every claim
// stored and answers its amount; a claim whose write fails is retried
// alone, so it fails and the rest of its batch commits. In every case
// each claimer's answer is exactly what is stored.
func TestGroupedClaimsFaults(t *testing.T) {
	for name, st := range benchStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, tc := range []struct {
				name string
				// fault fails statements; bad is the claimer expected to fail.
				fault func(q string, args []driver.NamedValue) error
				bad   int
			}{
				{"commit fails", nil, -1},
				{"commit durable, reported failed", nil, -1},
				{"one claimer's posting fails", func(q string, args []driver.NamedValue) error {
					if strings.Contains(q, "INSERT INTO wallet_postings") && argsHold(args, "user:@poison:b") {
						return errors.New("injected posting failure")
					}
					return nil
				}, 3},
			} {
				t.Run(tc.name, func(t *testing.T) {
					id := makeEnvelopes(t, st, "fault-"+fmt.Sprint(len(tc.name)), 1, 10)[0]
					gs := &gatedStore{Store: st, gate: make(chan struct{})}
					g := newGrouper(gs, NewRand(9), time.Now, 1, 0)
					users := []string{"@a:b", "@b:b", "@c:b", "@poison:b", "@d:b"}
					var failing sync.Once
					fault := tc.fault
					switch tc.name {
					case "commit fails", "commit durable, reported failed":
						always := tc.name == "commit fails"
						kind := storage.StmtCommit
						if !always {
							kind = storage.StmtCommitted
						}
						fault = func(q string, _ []driver.NamedValue) error {
							var err error
							if storage.IsStatement(q, kind) {
								if always {
									return errors.New("injected commit failure")
								}
								failing.Do(func() { err = errors.New("injected failure after a durable commit") })
							}
							return err
						}
					}
					res := make([]storage.ClaimResult, len(users))
					errs := make([]error, len(users))
					var wg sync.WaitGroup
					wg.Add(1)
					go func() { // the gate's claim: its batch is held while the rest queue
						defer wg.Done()
						res[0], _, errs[0] = g.claim(ctx, id, users[0])
					}()
					eventually(t, "the first claim's owner", func() bool {
						g.shards[0].mu.Lock()
						defer g.shards[0].mu.Unlock()
						return g.shards[0].running && len(g.shards[0].queue) == 0
					})
					for i := 1; i < len(users); i++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							res[i], _, errs[i] = g.claim(ctx, id, users[i])
						}()
					}
					eventually(t, "queued claims", func() bool {
						g.shards[0].mu.Lock()
						defer g.shards[0].mu.Unlock()
						return len(g.shards[0].queue) == len(users)-1
					})
					gs.mu.Lock()
					st.SetStatementFault(func(q string, args []driver.NamedValue) error {
						gs.mu.Lock()
						n := len(gs.sizes)
						gs.mu.Unlock()
						if n < 2 {
							return nil // the gate's batch commits untouched
						}
						return fault(q, args)
					})
					gs.mu.Unlock()
					close(gs.gate)
					wg.Wait()
					st.SetStatementFault(nil)
					_, stored, err := st.Envelope(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					byUser := map[string]int64{}
					for _, c := range stored {
						byUser[c.UserID] = c.Amount
					}
					for i, u := range users {
						failed := errs[i] != nil || res[i].Err != nil
						wantFail := i == tc.bad || (tc.name == "commit fails" && i > 0)
						if failed != wantFail {
							t.Errorf("%s: %+v %v, want failed %v", u, res[i], errs[i], wantFail)
						}
						a, ok := byUser[u]
						if ok == failed || (ok && a != res[i].Amount) {
							t.Errorf("%s: answered %+v %v, stored %d %v: want the answer to be what is stored", u, res[i], errs[i], a, ok)
						}
					}
					ledgerOK(t, st, id)
				})
			}
		})
	}
}

// TestGroupedClaimsLeftClaimerSkipped: when a batch fails and is retried
// claim by claim, a claimer that has left meanwhile costs no transaction
// (against a sick database each one could wait the whole batch timeout).
func TestGroupedClaimsLeftClaimerSkipped(t *testing.T) {
	for name, st := range benchStores(t) {
		t.Run(name, func(t *testing.T) {
			id := makeEnvelopes(t, st, "left", 1, 10)[0]
			gs := &gatedStore{Store: st, gate: make(chan struct{})}
			g := newGrouper(gs, NewRand(9), time.Now, 1, 0)
			ctxs := make([]context.Context, 4)
			cancels := make([]context.CancelFunc, 4)
			for i := range ctxs {
				ctxs[i], cancels[i] = context.WithCancel(context.Background())
				defer cancels[i]()
			}
			var wg sync.WaitGroup
			claim := func(i int) {
				defer wg.Done()
				g.claim(ctxs[i], id, fmt.Sprintf("@l%d:b", i))
			}
			wg.Add(1)
			go claim(0)
			eventually(t, "the first claim's owner", func() bool {
				g.shards[0].mu.Lock()
				defer g.shards[0].mu.Unlock()
				return g.shards[0].running && len(g.shards[0].queue) == 0
			})
			for i := 1; i < 4; i++ {
				wg.Add(1)
				go claim(i)
			}
			eventually(t, "three queued claims", func() bool {
				g.shards[0].mu.Lock()
				defer g.shards[0].mu.Unlock()
				return len(g.shards[0].queue) == 3
			})
			st.SetStatementFault(func(q string, _ []driver.NamedValue) error {
				gs.mu.Lock()
				n := len(gs.sizes)
				gs.mu.Unlock()
				if n < 2 || !storage.IsStatement(q, storage.StmtCommit) {
					return nil
				}
				if n == 2 {
					cancels[2]() // claimer 2 leaves while its batch fails
				}
				return errors.New("injected commit failure")
			})
			defer st.SetStatementFault(nil)
			close(gs.gate)
			wg.Wait()
			gs.mu.Lock()
			defer gs.mu.Unlock()
			if got := fmt.Sprint(gs.sizes); got != "[1 3 1 1]" {
				t.Errorf("batches = %s, want [1 3 1 1] (claimers 1 and 3 retried alone, 2 skipped)", got)
			}
		})
	}
}
