package homeserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

const (
	envAPI   = "/_parley/client/v1"
	walletAd = "/_parley/admin/v1/wallet/users/"
)

// money is a server with an operator and a group room of members, each
// topped up, driven over HTTP.
type money struct {
	t       *testing.T
	srv     *hstest.Server
	boss    *hstest.Client
	room    string
	members []*hstest.Client // members[0] created the room
}

func startMoney(t *testing.T, st hstest.Store, members int, dataDir string, mutate func(*config.Config)) *money {
	t.Helper()
	srv := hstest.Start(t, hstest.Options{Store: st, DataDir: dataDir, Mutate: mutate})
	m := &money{t: t, srv: srv}
	m.boss = srv.Register(t, "boss")
	if err := srv.Srv.Store.SetAdmin(context.Background(), m.boss.UserID, true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < members; i++ {
		m.members = append(m.members, srv.Register(t, fmt.Sprintf("m%d", i)))
	}
	if members > 0 {
		m.room = m.members[0].CreateRoom(map[string]any{"preset": "public_chat"})
		for _, c := range m.members[1:] {
			c.Join(m.room)
		}
	}
	return m
}

func (m *money) topUp(c *hstest.Client, amount int64, key string) gjson.Result {
	m.t.Helper()
	return m.boss.MustDo("POST", walletAd+hstest.Esc(c.UserID)+"/top_up", map[string]any{"amount": amount, "idempotency_key": key})
}

func balance(c *hstest.Client) int64 {
	return c.MustDo("GET", envAPI+"/wallet", nil).Get("balance").Int()
}

// ledger is what a refusal must leave untouched: every account's balance
// and the number of movements, plus the zero sums.
func (m *money) ledger() string {
	m.t.Helper()
	ctx := context.Background()
	st := m.srv.Srv.Store
	bal, post, err := st.LedgerSums(ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	if bal != 0 || post != 0 {
		m.t.Fatalf("ledger sums: balances %d, postings %d, want 0 and 0", bal, post)
	}
	out := ""
	for _, c := range append([]*hstest.Client{m.boss}, m.members...) {
		h := c.MustDo("GET", envAPI+"/wallet/history?limit=100", nil)
		out += fmt.Sprintf("%s=%d/%d ", c.UserID, balance(c), len(h.Get("chunk").Array()))
	}
	return out
}

func (m *money) send(c *hstest.Client, body map[string]any) (int, gjson.Result) {
	return c.Do("POST", envAPI+"/rooms/"+hstest.Esc(m.room)+"/red_envelopes", body)
}

func claim(c *hstest.Client, id string) (int, gjson.Result) {
	return c.Do("POST", envAPI+"/red_envelopes/"+hstest.Esc(id)+"/claim", map[string]any{})
}

// TestEnvelopeSendClaimGet: an envelope reaches members through /sync,
// exactly count claims succeed and sum to the total, a second claim
// returns the first amount, and GET shows the best luck once finished.
func TestEnvelopeSendClaimGet(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			for _, kind := range []string{"random", "equal"} {
				t.Run(kind, func(t *testing.T) {
					m := startMoney(t, st.Fresh(t), 5, "", nil)
					alice := m.members[0]
					m.topUp(alice, 10000, "k1")
					if got := m.topUp(alice, 10000, "k1"); !got.Get("replayed").Bool() || got.Get("balance").Int() != 10000 {
						t.Fatalf("top-up retry = %s, want replayed with balance 10000", got.Raw)
					}
					since := m.members[1].Sync("", 0).Get("next_batch").String()
					sent := alice.MustDo("POST", envAPI+"/rooms/"+hstest.Esc(m.room)+"/red_envelopes",
						map[string]any{"total": 1000, "count": 3, "kind": kind, "message": "新年快乐"})
					id := sent.Get("envelope_id").String()
					if got := balance(alice); got != 9000 {
						t.Fatalf("sender balance after send = %d, want 9000", got)
					}
					found := false
					for i := 0; i < 50 && !found; i++ {
						s := m.members[1].Sync(since, 1000)
						since = s.Get("next_batch").String()
						for _, e := range hstest.Room(s, "join", m.room).Get("timeline.events").Array() {
							if e.Get("type").String() == "io.parley.red_envelope" && e.Get("content.envelope_id").String() == id {
								found = true
							}
						}
					}
					if !found {
						t.Fatalf("the envelope event never reached a member's /sync")
					}
					var sum int64
					amounts := map[string]int64{}
					for _, c := range m.members[1:4] {
						st, res := claim(c, id)
						if st != 200 {
							t.Fatalf("claim by %s = %d %s, want 200", c.UserID, st, res.Raw)
						}
						amounts[c.UserID] = res.Get("amount").Int()
						sum += amounts[c.UserID]
						if kind == "equal" && amounts[c.UserID] < 333 {
							t.Fatalf("equal share = %d, want >= 333", amounts[c.UserID])
						}
					}
					if sum != 1000 {
						t.Fatalf("shares sum to %d, want 1000", sum)
					}
					// The claims are announced by notice events, possibly batched.
					noticed := map[string]int64{}
					for i := 0; i < 50 && len(noticed) < 3; i++ {
						s := m.members[1].Sync(since, 1000)
						since = s.Get("next_batch").String()
						for _, e := range hstest.Room(s, "join", m.room).Get("timeline.events").Array() {
							if e.Get("type").String() == "io.parley.red_envelope.claimed" && e.Get("content.envelope_id").String() == id {
								for _, c := range e.Get("content.claims").Array() {
									noticed[c.Get("user_id").String()] = c.Get("amount").Int()
								}
							}
						}
					}
					for u, a := range amounts {
						if noticed[u] != a {
							t.Fatalf("claim notices %v, want %v", noticed, amounts)
						}
					}
					before := m.ledger()
					b := m.members[1]
					if st, res := claim(b, id); st != 200 || res.Get("amount").Int() != amounts[b.UserID] || !res.Get("replayed").Bool() {
						t.Fatalf("second claim = %d %s, want 200 with the first amount %d, replayed", st, res.Raw, amounts[b.UserID])
					}
					if st, res := claim(m.members[4], id); st != 409 || res.Get("errcode").String() != "IO.PARLEY.ENVELOPE_EMPTY" {
						t.Fatalf("claim of an empty envelope = %d %s, want 409 IO.PARLEY.ENVELOPE_EMPTY", st, res.Raw)
					}
					if after := m.ledger(); after != before {
						t.Fatalf("ledger after refused claims = %s, want %s", after, before)
					}
					g := m.members[4].MustDo("GET", envAPI+"/red_envelopes/"+hstest.Esc(id), nil)
					if g.Get("state").String() != "finished" || len(g.Get("claims").Array()) != 3 || g.Get("remaining").Int() != 0 {
						t.Fatalf("GET = %s, want finished with 3 claims and nothing remaining", g.Raw)
					}
					var best int64
					for _, a := range amounts {
						best = max(best, a)
					}
					if got := g.Get("best_luck.amount").Int(); got != best {
						t.Fatalf("best_luck = %s, want amount %d", g.Get("best_luck").Raw, best)
					}
					for _, c := range m.members[1:4] {
						if got := balance(c); got != amounts[c.UserID] {
							t.Fatalf("balance of %s = %d, want %d", c.UserID, got, amounts[c.UserID])
						}
					}
				})
			}
		})
	}
}

// TestEnvelopeRefusals: every refusal is a Matrix error and leaves the
// ledger untouched.
func TestEnvelopeRefusals(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			m := startMoney(t, st, 3, "", func(c *config.Config) { c.Envelopes.MaxCount = 10; c.Envelopes.MaxTotal = 5000 })
			alice, bob := m.members[0], m.members[1]
			outsider := m.srv.Register(t, "outsider")
			m.topUp(alice, 3000, "a")
			_, res := m.send(alice, map[string]any{"total": 100, "count": 1, "kind": "random"})
			env := res.Get("envelope_id").String()
			dm := alice.CreateRoom(map[string]any{"is_direct": true, "invite": []string{bob.UserID}})
			bob.Join(dm)
			st2, res2 := alice.Do("POST", envAPI+"/rooms/"+hstest.Esc(dm)+"/red_envelopes", map[string]any{"total": 10, "count": 1, "kind": "equal"})
			if st2 != 200 {
				t.Fatalf("DM send = %d %s", st2, res2.Raw)
			}
			dmEnv := res2.Get("envelope_id").String()
			sendTo := func(room string) func(c *hstest.Client, body any) (int, gjson.Result) {
				return func(c *hstest.Client, body any) (int, gjson.Result) {
					return c.Do("POST", envAPI+"/rooms/"+hstest.Esc(room)+"/red_envelopes", body)
				}
			}
			group := sendTo(m.room)
			cases := []struct {
				name    string
				do      func() (int, gjson.Result)
				status  int
				errcode string
			}{
				{"zero total", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 0, "count": 1, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"negative total", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": -5, "count": 1, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"overflowing total", func() (int, gjson.Result) {
					return group(alice, []byte(`{"total": 99999999999999999999999, "count": 1, "kind": "random"}`))
				}, 400, "M_INVALID_PARAM"},
				{"fractional total", func() (int, gjson.Result) {
					return group(alice, []byte(`{"total": 10.5, "count": 1, "kind": "random"}`))
				}, 400, "M_INVALID_PARAM"},
				{"total above the limit", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 5001, "count": 1, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"zero count", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 10, "count": 0, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"count above total", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 5, "count": 6, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"count above the limit", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 100, "count": 11, "kind": "random"})
				}, 400, "M_INVALID_PARAM"},
				{"missing total", func() (int, gjson.Result) { return group(alice, map[string]any{"count": 1, "kind": "random"}) }, 400, "M_MISSING_PARAM"},
				{"unknown kind", func() (int, gjson.Result) {
					return group(alice, map[string]any{"total": 10, "count": 1, "kind": "lucky"})
				}, 400, "M_INVALID_PARAM"},
				{"not JSON", func() (int, gjson.Result) { return group(alice, []byte(`{`)) }, 400, "M_NOT_JSON"},
				{"insufficient balance", func() (int, gjson.Result) {
					return group(bob, map[string]any{"total": 10, "count": 1, "kind": "random"})
				}, 403, "IO.PARLEY.INSUFFICIENT_BALANCE"},
				{"send by a non-member", func() (int, gjson.Result) {
					return group(outsider, map[string]any{"total": 10, "count": 1, "kind": "random"})
				}, 403, "M_FORBIDDEN"},
				{"claim by a non-member", func() (int, gjson.Result) { return claim(outsider, env) }, 404, "M_NOT_FOUND"},
				{"GET by a non-member", func() (int, gjson.Result) {
					return outsider.Do("GET", envAPI+"/red_envelopes/"+hstest.Esc(env), nil)
				}, 404, "M_NOT_FOUND"},
				{"unknown envelope", func() (int, gjson.Result) { return claim(bob, "nope") }, 404, "M_NOT_FOUND"},
				{"sender claims in a DM", func() (int, gjson.Result) { return claim(alice, dmEnv) }, 403, "M_FORBIDDEN"},
				{"withdraw more than the balance", func() (int, gjson.Result) {
					return m.boss.Do("POST", walletAd+hstest.Esc(bob.UserID)+"/withdraw", map[string]any{"amount": 1, "idempotency_key": "w"})
				}, 403, "IO.PARLEY.INSUFFICIENT_BALANCE"},
				{"top-up by a non-admin", func() (int, gjson.Result) {
					return bob.Do("POST", walletAd+hstest.Esc(bob.UserID)+"/top_up", map[string]any{"amount": 1, "idempotency_key": "x"})
				}, 403, "M_FORBIDDEN"},
				{"top-up without a key", func() (int, gjson.Result) {
					return m.boss.Do("POST", walletAd+hstest.Esc(bob.UserID)+"/top_up", map[string]any{"amount": 1})
				}, 400, "M_INVALID_PARAM"},
				{"top-up key reused for another amount", func() (int, gjson.Result) {
					return m.boss.Do("POST", walletAd+hstest.Esc(alice.UserID)+"/top_up", map[string]any{"amount": 7, "idempotency_key": "a"})
				}, 400, "M_INVALID_PARAM"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					before := m.ledger()
					st, res := tc.do()
					if st != tc.status || res.Get("errcode").String() != tc.errcode || res.Get("error").String() == "" {
						t.Fatalf("got %d %s, want %d %s with an error text", st, res.Raw, tc.status, tc.errcode)
					}
					if after := m.ledger(); after != before {
						t.Fatalf("ledger after the refusal = %s, want %s", after, before)
					}
				})
			}
			// bob claims the DM envelope; then it is empty for everyone.
			if st, res := claim(bob, dmEnv); st != 200 || res.Get("amount").Int() != 10 {
				t.Fatalf("DM claim = %d %s, want 10", st, res.Raw)
			}
		})
	}
}

// poll waits for cond, failing after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEnvelopeExpiryRefund: an expired envelope refuses claims, and the
// sweeper refunds its remainder exactly once, also across a restart.
func TestEnvelopeExpiryRefund(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			dir := t.TempDir()
			mut := func(c *config.Config) { c.Envelopes.ExpirySeconds = 1; c.Envelopes.SweepIntervalMs = 50 }
			m := startMoney(t, st, 3, dir, mut)
			alice, bob := m.members[0], m.members[1]
			m.topUp(alice, 1000, "t")
			_, res := m.send(alice, map[string]any{"total": 500, "count": 4, "kind": "random"})
			id := res.Get("envelope_id").String()
			_, c := claim(bob, id)
			got := c.Get("amount").Int()
			poll(t, 10*time.Second, "the refund", func() bool {
				return alice.MustDo("GET", envAPI+"/red_envelopes/"+hstest.Esc(id), nil).Get("state").String() == "refunded"
			})
			want := 1000 - got
			if b := balance(alice); b != want {
				t.Fatalf("sender balance after refund = %d, want %d", b, want)
			}
			if st, res := claim(m.members[2], id); st != 410 || res.Get("errcode").String() != "IO.PARLEY.ENVELOPE_EXPIRED" {
				t.Fatalf("claim after expiry = %d %s, want 410 IO.PARLEY.ENVELOPE_EXPIRED", st, res.Raw)
			}
			m.ledger()
			m.srv.Stop()
			srv2 := hstest.Start(t, hstest.Options{Store: st, DataDir: dir, Mutate: mut})
			alice.Base = srv2.URL
			if _, err := srv2.Srv.Envelopes.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if b := balance(alice); b != want {
				t.Fatalf("sender balance after restart and sweep = %d, want %d (refunded once)", b, want)
			}
			h := alice.MustDo("GET", envAPI+"/wallet/history", nil)
			refunds := 0
			for _, e := range h.Get("chunk").Array() {
				if e.Get("kind").String() == "envelope_refund" {
					refunds++
				}
			}
			if refunds != 1 {
				t.Fatalf("refund entries in history = %d, want 1: %s", refunds, h.Raw)
			}
		})
	}
}

// TestWalletHistoryPaging: history pages newest first, each movement once,
// and a cursor the server never gave is refused.
func TestWalletHistoryPaging(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			m := startMoney(t, st, 1, "", nil)
			alice := m.members[0]
			for i := 1; i <= 5; i++ {
				m.topUp(alice, int64(i), fmt.Sprint("p", i))
			}
			m.boss.MustDo("POST", walletAd+hstest.Esc(alice.UserID)+"/withdraw", map[string]any{"amount": 3, "idempotency_key": "w1"})
			var got []int64
			from := ""
			for page := 0; page < 10; page++ {
				q := envAPI + "/wallet/history?limit=2"
				if from != "" {
					q += "&from=" + from
				}
				res := alice.MustDo("GET", q, nil)
				for _, e := range res.Get("chunk").Array() {
					got = append(got, e.Get("amount").Int())
				}
				from = res.Get("next_batch").String()
				if from == "" {
					break
				}
			}
			var sum int64
			for _, a := range got {
				sum += a
			}
			if len(got) != 6 || sum != 12 || got[0] != -3 {
				t.Fatalf("history amounts %v, want 6 entries summing to 12, newest (-3) first", got)
			}
			if b := balance(alice); b != 12 {
				t.Fatalf("balance %d, want 12", b)
			}
			if st, res := alice.Do("GET", envAPI+"/wallet/history?from=garbage", nil); st != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
				t.Fatalf("bad cursor = %d %s, want 400 M_INVALID_PARAM", st, res.Raw)
			}
		})
	}
}
