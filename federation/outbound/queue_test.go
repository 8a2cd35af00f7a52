package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

const remote = "remote.test"

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func checkNoDuplicates(t *testing.T, p *peer) {
	t.Helper()
	keys := p.pduKeys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("PDU %s arrived twice", k)
		}
		seen[k] = true
	}
}

func waitCaughtUp(t *testing.T, q *outbound.Queue, dest string) {
	t.Helper()
	hstest.Eventually(t, dest+" caught up", func() bool {
		st, err := q.Status(context.Background(), dest)
		return err == nil && st.CaughtUp
	})
}

// A backlog reaches the receiver in send order, in transactions of at most
// 50 PDUs, one in flight at a time; local sends go on while the receiver
// hangs, since the commit hook only signals.
func TestOutboundOrderBatchesOneInFlight(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			room := f.room(alice)
			f.injectMember(room, "join", "@bob:"+remote)
			p := newPeer(t)
			f.tr.route(remote, p.srv.URL)
			q := f.startQueue()

			p.setMode("hang")
			alice.Send(room, "t0", "m0")
			hstest.Eventually(t, "the first transaction to hang", func() bool { return p.inFlight() == 1 })
			// The receiver hangs: these sends must still be acknowledged.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 1; i < 120; i++ {
					alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
				}
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("local sends blocked while the receiver hangs")
			}
			p.setMode("ok")
			want := seq("m", 0, 120)
			hstest.Eventually(t, "all 120 messages at the receiver", func() bool { return len(p.bodies()) >= len(want) })
			waitCaughtUp(t, q, remote)
			if got := p.bodies(); !slices.Equal(got, want) {
				t.Errorf("received bodies = %v, want %v", got, want)
			}
			checkNoDuplicates(t, p)
			full := 0
			for _, txn := range p.got() {
				if len(txn.PDUs) > 50 {
					t.Errorf("transaction %s holds %d PDUs, want at most 50", txn.ID, len(txn.PDUs))
				}
				if len(txn.PDUs) == 50 {
					full++
				}
			}
			if full == 0 {
				t.Errorf("no transaction of 50 PDUs for a backlog of 119; sizes: %v", txnSizes(p))
			}
			p.mu.Lock()
			maxIn := p.maxInflight
			p.mu.Unlock()
			if maxIn != 1 {
				t.Errorf("at most %d transactions in flight at once, want 1", maxIn)
			}
		})
	}
}

func txnSizes(p *peer) []int {
	var out []int
	for _, txn := range p.got() {
		out = append(out, len(txn.PDUs))
	}
	return out
}

// A destination that fails (500) or is down (connection refused) is retried
// with the same transaction ID, with growing waits; when it comes back it
// gets everything once, in order.
func TestOutboundBackoffAndCatchUp(t *testing.T) {
	for _, fault := range []string{"500", "down"} {
		for _, st := range hstest.Stores(t) { // a fresh database per case
			t.Run(fault+"/"+st.Name, func(t *testing.T) {
				const minB, maxB = 20 * time.Millisecond, 160 * time.Millisecond
				f := newFixture(t, st, func(c *outbound.Config) { c.MinBackoff, c.MaxBackoff = minB, maxB })
				alice := f.register("alice")
				room := f.room(alice)
				f.injectMember(room, "join", "@bob:"+remote)
				p := newPeer(t)
				tr := f.tr
				if fault == "500" {
					p.setMode("fail")
					tr.route(remote, p.srv.URL)
				} else {
					tr.route(remote, deadAddr(t))
				}
				q := f.startQueue()
				for i := range 30 {
					alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
				}
				hstest.Eventually(t, "6 failed attempts", func() bool { return len(tr.attemptsTo(remote)) >= 6 })
				fails := tr.attemptsTo(remote)
				for i, a := range fails {
					if a.err == nil {
						t.Fatalf("attempt %d succeeded against a failing destination", i)
					}
				}
				// The first transaction is retried as is: the same ID each time.
				for i := 1; i < len(fails); i++ {
					if fails[i].txnID != fails[0].txnID {
						t.Errorf("attempt %d carries transaction %s, want the retried %s", i, fails[i].txnID, fails[0].txnID)
					}
					// Wait k doubles from minB up to maxB, times a jitter of at least 0.5.
					want := min(minB<<(i-1), maxB) / 2
					if gap := fails[i].at.Sub(fails[i-1].at); gap < want {
						t.Errorf("gap before attempt %d = %v, want at least %v", i, gap, want)
					}
				}
				st, err := q.Status(context.Background(), remote)
				if err != nil || st.Failures == 0 || st.InFlight != fails[0].txnID {
					t.Errorf("Status = %+v, %v; want failures > 0 and transaction %s in flight", st, err, fails[0].txnID)
				}

				p.setMode("ok")
				tr.route(remote, p.srv.URL)
				q.Reachable(remote)
				want := seq("m", 0, 30)
				hstest.Eventually(t, "all 30 messages after recovery", func() bool { return len(p.bodies()) >= len(want) })
				waitCaughtUp(t, q, remote)
				if got := p.bodies(); !slices.Equal(got, want) {
					t.Errorf("received bodies = %v, want %v", got, want)
				}
				checkNoDuplicates(t, p)
				if got := p.got(); len(got) == 0 || got[0].ID != fails[0].txnID {
					t.Errorf("first delivered transaction = %v, want the retried %s", got, fails[0].txnID)
				}
			})
		}
	}
}

// A sender restarted (server and queue) while a destination is down resumes
// from its cursor: what was delivered is not sent again, what was not
// arrives, and the transaction in flight keeps its ID across the restart.
func TestOutboundRestartResumes(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			room := f.room(alice)
			f.injectMember(room, "join", "@bob:"+remote)
			p := newPeer(t)
			tr := f.tr
			tr.route(remote, p.srv.URL)
			f.startQueue()
			for i := range 5 {
				alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
			}
			hstest.Eventually(t, "the first 5 messages", func() bool { return len(p.bodies()) == 5 })

			p.setMode("fail")
			for i := 5; i < 15; i++ {
				alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
			}
			hstest.Eventually(t, "a failed attempt", func() bool {
				for _, a := range tr.attemptsTo(remote) {
					if a.err != nil {
						return true
					}
				}
				return false
			})
			var inFlight string
			f.restart(func() {
				for _, a := range tr.attemptsTo(remote) {
					if a.err != nil {
						inFlight = a.txnID
					}
				}
				p.setMode("ok")
			})
			q2 := f.q
			want := seq("m", 0, 15)
			hstest.Eventually(t, "all 15 messages after the restart", func() bool { return len(p.bodies()) >= len(want) })
			waitCaughtUp(t, q2, remote)
			if got := p.bodies(); !slices.Equal(got, want) {
				t.Errorf("received bodies = %v, want %v", got, want)
			}
			checkNoDuplicates(t, p)
			found := false
			for _, txn := range p.got() {
				found = found || txn.ID == inFlight
			}
			if !found {
				t.Errorf("transaction %s, in flight at the restart, never delivered under its ID; got %v", inFlight, txnIDs(p))
			}
		})
	}
}

func txnIDs(p *peer) []string {
	var out []string
	for _, txn := range p.got() {
		out = append(out, txn.ID)
	}
	return out
}

// A server gets a room's events only while it is in the room: none from
// before its join, its own kick, none after.
func TestOutboundRoomSpans(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			room := f.room(alice)
			p1, p2 := newPeer(t), newPeer(t)
			f.tr.route("one.test", p1.srv.URL)
			f.tr.route("two.test", p2.srv.URL)
			f.startQueue()

			alice.Send(room, "t0", "before-anyone")
			f.injectMember(room, "join", "@bob:one.test")
			alice.Send(room, "t1", "a1")
			f.injectMember(room, "join", "@carol:two.test", "@dave:two.test")
			alice.Send(room, "t2", "a2")
			f.injectMember(room, "leave", "@carol:two.test") // two.test still has dave
			alice.Send(room, "t3", "a3")
			changeMember(t, f.srv, room, alice.UserID, "@dave:two.test", "leave") // the kick: two.test's last user
			alice.Send(room, "t4", "a4")
			f.injectMember(room, "join", "@carol:two.test") // back: a second span
			alice.Send(room, "t5", "a5")
			waitCaughtUp(t, f.q, "one.test")
			waitCaughtUp(t, f.q, "two.test")

			if got, want := p1.bodies(), []string{"a1", "a2", "a3", "a4", "a5"}; !slices.Equal(got, want) {
				t.Errorf("one.test got %v, want %v", got, want)
			}
			if got, want := p2.bodies(), []string{"a2", "a3", "a5"}; !slices.Equal(got, want) {
				t.Errorf("two.test got %v, want %v", got, want)
			}
			kicked := false
			for _, txn := range p2.got() {
				for _, pdu := range txn.PDUs {
					kicked = kicked || (pdu.Get("type").String() == "m.room.member" && pdu.Get("state_key").String() == "@dave:two.test")
				}
			}
			if !kicked {
				t.Errorf("two.test never got the kick of its last user")
			}
			for _, txn := range append(p1.got(), p2.got()...) {
				for _, pdu := range txn.PDUs {
					if s := pdu.Get("sender").String(); s != alice.UserID {
						t.Errorf("sent a PDU of %s: a server sends only its own users' events", s)
					}
				}
			}
		})
	}
}

// Durable EDUs wait in the store through a restart of the queue and arrive
// once, in order, at most 100 per transaction; ephemeral ones go when the
// destination is up.
func TestOutboundEDUs(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			p := newPeer(t)
			tr := f.tr
			tr.route(remote, deadAddr(t))
			q := f.startQueue()
			ctx := context.Background()

			if err := q.EnqueueEDU(ctx, f.srv.Cfg.ServerName, outbound.EDU{Type: "m.typing", Content: []byte(`{}`)}); !errors.Is(err, outbound.ErrBadDestination) {
				t.Errorf("EnqueueEDU(our own server) = %v, want ErrBadDestination", err)
			}
			for i := range 150 {
				if err := q.EnqueueEDU(ctx, remote, outbound.EDU{Type: "m.direct_to_device",
					Content: fmt.Appendf(nil, `{"message_id":"%d"}`, i)}); err != nil {
					t.Fatalf("EnqueueEDU %d: %v", i, err)
				}
			}
			hstest.Eventually(t, "a failed attempt", func() bool { return len(tr.attemptsTo(remote)) > 0 })
			f.restart(func() { tr.route(remote, p.srv.URL) })
			q2 := f.q
			waitCaughtUp(t, q2, remote)
			var ids []string
			for _, txn := range p.got() {
				if len(txn.EDUs) > 100 {
					t.Errorf("transaction %s holds %d EDUs, want at most 100", txn.ID, len(txn.EDUs))
				}
				for _, e := range txn.EDUs {
					ids = append(ids, e.Get("content.message_id").String())
				}
			}
			if want := seq("", 0, 150); !slices.Equal(ids, want) {
				t.Errorf("to-device message IDs = %v, want %v", ids, want)
			}

			if err := q2.EnqueueEDU(ctx, remote, outbound.EDU{Type: "m.typing", Content: []byte(`{"room_id":"!r:x","user_id":"@a:x","typing":true}`)}); err != nil {
				t.Fatalf("EnqueueEDU typing: %v", err)
			}
			hstest.Eventually(t, "the typing EDU", func() bool {
				got := p.got()
				last := got[len(got)-1]
				return len(last.EDUs) == 1 && last.EDUs[0].Get("edu_type").String() == "m.typing"
			})
		})
	}
}

// Past MaxDurableEDUs a destination's durable EDUs are refused, not held.
func TestOutboundDurableEDULimit(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	tr := newTransport()
	tr.route(remote, deadAddr(t))
	q := startQueue(t, srv, tr, func(c *outbound.Config) { c.MaxDurableEDUs = 3 })
	ctx := context.Background()
	for i := range 4 {
		err := q.EnqueueEDU(ctx, remote, outbound.EDU{Type: "m.device_list_update", Content: []byte(`{}`)})
		if want := i < 3; (err == nil) != want {
			t.Errorf("EnqueueEDU #%d = %v, want success %v", i, err, want)
		}
		if i == 3 && !errors.Is(err, outbound.ErrQueueFull) {
			t.Errorf("EnqueueEDU #%d = %v, want ErrQueueFull", i, err)
		}
	}
}

// The commit hook never blocks the writer: with the queue stopped, and with
// every destination hanging, local sends from many users complete.
func TestOutboundHookNeverBlocks(t *testing.T) {
	f := newFixture(t, hstest.Store{Name: "sqlite"}, nil)
	alice := f.register("alice")
	room := f.room(alice)
	p := newPeer(t)
	p.setMode("hang")
	var users []string
	for i := range 5 {
		dest := fmt.Sprintf("s%d.test", i)
		f.tr.route(dest, p.srv.URL)
		users = append(users, "@u:"+dest)
	}
	f.injectMember(room, "join", users...)
	f.startQueue()
	// A second queue, stopped, stays registered: its notice must not block.
	stopped, err := outbound.New(context.Background(), outbound.Config{ServerName: f.srv.Cfg.ServerName,
		Store: f.srv.Srv.Store, Transport: f.tr, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Srv.AddCommitListener(stopped)
	stopQueue(t, stopped)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				alice.Send(room, fmt.Sprintf("w%d-%d", w, i), "x")
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("local sends blocked behind hanging destinations")
	}
	hstest.Eventually(t, "every destination to hold a transaction", func() bool { return p.inFlight() == 5 })
}

// A destination in a quiet room, on a server whose other rooms are busy,
// still gets the quiet room's events: the worker reads through windows of
// positions with nothing for it.
func TestOutboundQuietRoomAmongBusyOnes(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			quiet := f.room(alice)
			busy := f.room(alice)
			f.injectMember(quiet, "join", "@bob:"+remote)
			p := newPeer(t)
			f.tr.route(remote, p.srv.URL)
			alice.Send(quiet, "q0", "q0")
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 500 {
						if _, err := f.srv.Srv.Rooms.Send(context.Background(), rooms.SendRequest{RoomID: busy, Sender: alice.UserID,
							Type: "m.room.message", Content: []byte(`{"msgtype":"m.text","body":"busy"}`)}); err != nil {
							t.Errorf("send %d/%d: %v", w, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			alice.Send(quiet, "q1", "q1")
			q := f.startQueue() // catch-up: 2,000 busy positions between q0 and q1
			waitCaughtUp(t, q, remote)
			alice.Send(quiet, "q2", "q2")
			waitCaughtUp(t, q, remote)
			if got, want := p.bodies(), []string{"q0", "q1", "q2"}; !slices.Equal(got, want) {
				t.Errorf("received bodies = %v, want %v", got, want)
			}
		})
	}
}

// A remote user's join that this server accepted as the resident server
// (send_join) goes to the room's other servers on its origin's behalf, and
// not back to its origin.
func TestOutboundSendOnBehalf(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			room := f.room(alice)
			p1, p2 := newPeer(t), newPeer(t)
			f.tr.route("one.test", p1.srv.URL)
			f.tr.route("two.test", p2.srv.URL)
			f.startQueue()
			f.injectMember(room, "join", "@bob:one.test")     // joined elsewhere: not ours to send
			f.injectOnBehalf(room, "join", "@carol:two.test") // joined through us
			alice.Send(room, "t1", "a1")
			waitCaughtUp(t, f.q, "one.test")
			waitCaughtUp(t, f.q, "two.test")

			joins := func(p *peer) []string {
				var out []string
				for _, txn := range p.got() {
					for _, pdu := range txn.PDUs {
						if pdu.Get("type").String() == "m.room.member" {
							out = append(out, pdu.Get("state_key").String())
						}
					}
				}
				return out
			}
			if got, want := joins(p1), []string{"@carol:two.test"}; !slices.Equal(got, want) {
				t.Errorf("one.test got member events of %v, want %v", got, want)
			}
			if got := joins(p2); len(got) != 0 {
				t.Errorf("two.test got member events of %v, want none (its own join is not sent back)", got)
			}
			for name, p := range map[string]*peer{"one.test": p1, "two.test": p2} {
				if got, want := p.bodies(), []string{"a1"}; !slices.Equal(got, want) {
					t.Errorf("%s got %v, want %v", name, got, want)
				}
			}
		})
	}
}

// A crash loses nothing: the store closes under a running queue (as a
// killed process leaves it: the last acknowledgements unsaved), and a new
// server and queue on the same data deliver everything. PDUs acknowledged
// in the last second may come again; receivers drop events they have.
func TestOutboundCrashLosesNothing(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			f := newFixture(t, st, nil)
			alice := f.register("alice")
			room := f.room(alice)
			f.injectMember(room, "join", "@bob:"+remote)
			p := newPeer(t)
			f.tr.route(remote, p.srv.URL)
			// Not through StartOutbound: the server's Shutdown must not
			// stop this queue cleanly first.
			crashed, err := outbound.New(context.Background(), outbound.Config{ServerName: f.srv.Cfg.ServerName,
				Store: f.srv.Srv.Store, Transport: f.tr, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			f.srv.Srv.AddCommitListener(crashed)
			for i := range 20 {
				alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
			}
			hstest.Eventually(t, "the first 20 messages", func() bool { return len(p.bodies()) >= 20 })
			f.restart(func() { stopQueue(t, crashed) }) // the store is closed: its last state is not saved
			f.startQueue()
			for i := 20; i < 25; i++ {
				alice.Send(room, fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i))
			}
			waitCaughtUp(t, f.q, remote)
			var firsts []string
			seen := map[string]bool{}
			for _, b := range p.bodies() {
				if !seen[b] {
					seen[b] = true
					firsts = append(firsts, b)
				}
			}
			if want := seq("m", 0, 25); !slices.Equal(firsts, want) {
				t.Errorf("received bodies (first arrivals) = %v, want %v", firsts, want)
			}
			t.Logf("PDUs sent again after the crash: %d", len(p.bodies())-len(firsts))
		})
	}
}
