package homeserver_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// fastRetry makes outbound retries start at 50 ms and stay under 500 ms, so
// a server that comes back is caught up within the test's patience.
func fastRetry(c *config.Config) {
	c.Federation.RetryMinMS = 50
	c.Federation.RetryMaxMS = 500
}

// startThree starts three federating servers on 127.0.0.2, .3 and .4.
func startThree(t *testing.T, st hstest.Store) []*hstest.Server {
	t.Helper()
	var out []*hstest.Server
	for _, host := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		out = append(out, hstest.StartFederating(t, hstest.FedOptions{Host: host,
			Options: hstest.Options{Store: st.Fresh(t), Mutate: fastRetry}}))
	}
	return out
}

// sendQuiet sends a message without t.Fatal, for use off the test's
// goroutine.
func sendQuiet(c *hstest.Client, roomID, txn, body string) error {
	code, res := c.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/send/m.room.message/"+hstest.Esc(txn),
		map[string]any{"msgtype": "m.text", "body": body})
	if code != 200 {
		return fmt.Errorf("send %s: %d %s", body, code, res.Raw)
	}
	return nil
}

// checkOnceInOrder reports what is wrong with bodies: each of want's
// senders' messages ("<sender>-<i>") must appear exactly once, and each
// sender's in its sending order.
func checkOnceInOrder(bodies []string, senders []string, n int) string {
	seen := map[string]int{}
	next := map[string]int{}
	for _, b := range bodies {
		seen[b]++
		sender, idx, ok := strings.Cut(b, "-")
		if !ok {
			continue
		}
		var i int
		fmt.Sscan(idx, &i)
		if i != next[sender] {
			return fmt.Sprintf("%s came after %s-%d: order broken", b, sender, next[sender]-1)
		}
		next[sender]++
	}
	for _, s := range senders {
		for i := range n {
			if b := fmt.Sprintf("%s-%d", s, i); seen[b] != 1 {
				return fmt.Sprintf("%s seen %d times, want once", b, seen[b])
			}
		}
	}
	return ""
}

// TestFederationThreeServers: a room made on A is joined from B and C by
// its alias; then one user on each server sends at the same time. Every
// message arrives exactly once on every server, each sender's order is
// kept everywhere, and the three end with the same /state.
func TestFederationThreeServers(t *testing.T) {
	const n = 15
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := startThree(t, st)
			users := []*hstest.Client{srv[0].Register(t, "alice"), srv[1].Register(t, "bob"), srv[2].Register(t, "carol")}
			room := users[0].CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "three"})
			alias := "#three:" + srv[0].FedName
			for _, u := range users[1:] {
				if got := u.Join(alias); got != room {
					t.Fatalf("%s joined %q by alias, want %q", u.UserID, got, room)
				}
			}
			for _, viewer := range users {
				for _, u := range users {
					hstest.Eventually(t, u.UserID+" joined as "+viewer.UserID+"'s server sees it", func() bool {
						return memberOn(viewer, room, u.UserID) == "join"
					})
				}
			}
			senders := []string{"alice", "bob", "carol"}
			var wg sync.WaitGroup
			errs := make(chan error, len(users))
			for k, u := range users {
				wg.Go(func() {
					for i := range n {
						if err := sendQuiet(u, room, fmt.Sprint("t", i), fmt.Sprintf("%s-%d", senders[k], i)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, viewer := range users {
				hstest.Eventually(t, "all messages on "+viewer.UserID+"'s server", func() bool {
					return len(viewer.MessageBodies(room)) >= len(users)*n
				})
				if msg := checkOnceInOrder(viewer.MessageBodies(room), senders, n); msg != "" {
					t.Errorf("on %s's server: %s", viewer.UserID, msg)
				}
			}
			hstest.Eventually(t, "same /state on all three", func() bool {
				a := stateIDs(t, users[0], room)
				return slices.Equal(a, stateIDs(t, users[1], room)) && slices.Equal(a, stateIDs(t, users[2], room))
			})
		})
	}
}

// startBehindProxy starts a federating server on host whose server name is
// the address of a fault proxy in front of its federation listener: every
// other server reaches it through the proxy, so cutting the proxy cuts the
// server off (inbound and, since its peers sit behind proxies too, outbound).
func startBehindProxy(t testing.TB, st hstest.Store, host string) (*hstest.Server, *hstest.FaultProxy) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	real := ln.Addr().String()
	ln.Close()
	proxy := hstest.StartFaultProxyOn(t, net.JoinHostPort(host, "0"), real)
	s := hstest.StartFederating(t, hstest.FedOptions{Addr: real, Options: hstest.Options{Store: st.Fresh(t),
		Mutate: func(c *config.Config) { fastRetry(c); c.ServerName = proxy.Addr() }}})
	s.FedName = proxy.Addr()
	s.FedURL = "https://" + proxy.Addr()
	return s, proxy
}

// fullState is a room's /state as c's server holds it: one line per event,
// sorted by type and state key, with its ID and content bytes.
func fullState(t *testing.T, c *hstest.Client, roomID string) []string {
	t.Helper()
	var out []string
	for _, e := range c.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/state", nil).Array() {
		out = append(out, e.Get("type").String()+"|"+e.Get("state_key").String()+"|"+e.Get("event_id").String()+"|"+e.Get("content").Raw)
	}
	slices.Sort(out)
	return out
}

// TestFederationPartitionHeals: A and B share a room; the network between
// them is cut; both change the same state (the name, the topic) while
// apart; when the network heals, the queued events cross, state
// resolution runs on both sides, and both end with byte-identical /state
// (same event IDs and content), holding one of the two names.
func TestFederationPartitionHeals(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, pa := startBehindProxy(t, st, "127.0.0.2")
			b, pb := startBehindProxy(t, st, "127.0.0.3")
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "before",
				"power_level_content_override": map[string]any{"users": map[string]any{bob.UserID: 100}}})
			joinVia(t, bob, room, a.FedName)
			hstest.Eventually(t, "bob's join on A", func() bool { return memberOn(alice, room, bob.UserID) == "join" })

			pa.Cut()
			pb.Cut()
			state := func(c *hstest.Client, typ string, content map[string]any) string {
				return c.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/"+typ+"/", content).Get("event_id").String()
			}
			nameA := state(alice, "m.room.name", map[string]any{"name": "from A"})
			state(alice, "m.room.topic", map[string]any{"topic": "A's topic"})
			nameB := state(bob, "m.room.name", map[string]any{"name": "from B"})
			state(bob, "m.room.topic", map[string]any{"topic": "B's topic"})
			alice.Send(room, "p1", "A while apart")
			bob.Send(room, "p1", "B while apart")
			if got := fullState(t, alice, room); slices.Equal(got, fullState(t, bob, room)) {
				t.Fatalf("state is the same on both sides during the partition: %q", got)
			}

			pa.Restore()
			pb.Restore()
			hstest.Eventually(t, "both sides' messages on both", func() bool {
				return hasBody(alice, room, "B while apart") && hasBody(bob, room, "A while apart")
			})
			var sa, sb []string
			hstest.Eventually(t, "byte-identical /state on A and B", func() bool {
				sa, sb = fullState(t, alice, room), fullState(t, bob, room)
				return slices.Equal(sa, sb)
			})
			var nameLine string
			for _, l := range sa {
				if strings.HasPrefix(l, "m.room.name||") {
					nameLine = l
				}
			}
			if !strings.Contains(nameLine, nameA) && !strings.Contains(nameLine, nameB) {
				t.Errorf("resolved name = %s, want one of the partition's names (%s, %s)", nameLine, nameA, nameB)
			}
		})
	}
}
