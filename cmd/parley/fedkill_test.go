package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestFederationKill9CatchUp: three servers share a room; C is the real
// binary in a child process. C acknowledges five sends and is killed with
// SIGKILL at once; A and B keep sending while it is gone; C restarts on the
// same address and data. Then every server holds every message exactly
// once and in each sender's order: C's acknowledged sends left its durable
// queue after the restart, and A's and B's queues caught C up.
func TestFederationKill9CatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fast := func(c *config.Config) { c.Federation.RetryMinMS, c.Federation.RetryMaxMS = 50, 500 }
	const n = 20
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			a := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: store.Fresh(t), Mutate: fast}})
			b := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3", Options: hstest.Options{Store: store.Fresh(t), Mutate: fast}})
			cStore := store.Fresh(t)
			dir := t.TempDir()
			addr := freeAddr(t)
			fedAddr := freeHostAddr(t, "127.0.0.4")
			cfgFile := filepath.Join(dir, "parley.yaml")
			if err := os.WriteFile(cfgFile, []byte("rate_limit:\n  enabled: false\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			start := func() *exec.Cmd {
				cmd := exec.Command(bin, "serve", "--config", cfgFile)
				cmd.Env = append(os.Environ(), "PARLEY_LISTEN="+addr, "PARLEY_DATA_DIR="+dir,
					"PARLEY_REGISTRATION=open", "PARLEY_DATABASE_URL="+cStore.URL, "PARLEY_LOG_LEVEL=warn",
					"PARLEY_SERVER_NAME="+fedAddr, "PARLEY_FEDERATION_LISTEN="+fedAddr,
					"PARLEY_FEDERATION_ALLOW_IPS=127.0.0.0/8", "PARLEY_FEDERATION_INSECURE_SKIP_VERIFY=true",
					"PARLEY_FEDERATION_RETRY_MIN_MS=50", "PARLEY_FEDERATION_RETRY_MAX_MS=500")
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatalf("start: %v", err)
				}
				t.Cleanup(func() { // never leave a server behind, even when the test fails
					cmd.Process.Kill()
					cmd.Wait()
				})
				waitReady(t, "http://"+addr)
				return cmd
			}
			cmd := start()
			c := &hstest.Server{URL: "http://" + addr}

			alice, bob, carol := a.Register(t, "alice"), b.Register(t, "bob"), c.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "crash"})
			for _, u := range []*hstest.Client{bob, carol} {
				if got := u.Join("#crash:" + a.FedName); got != room {
					t.Fatalf("%s joined %q, want %q", u.UserID, got, room)
				}
			}
			for _, viewer := range []*hstest.Client{alice, bob, carol} {
				for _, u := range []*hstest.Client{alice, bob, carol} {
					hstest.Eventually(t, u.UserID+" joined, seen by "+viewer.UserID, func() bool { return member(viewer, room, u.UserID) == "join" })
				}
			}
			for i := range 5 {
				carol.Send(room, fmt.Sprint("c", i), fmt.Sprintf("carol-%d", i))
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			cmd.Wait()
			for i := range n {
				alice.Send(room, fmt.Sprint("a", i), fmt.Sprintf("alice-%d", i))
				bob.Send(room, fmt.Sprint("b", i), fmt.Sprintf("bob-%d", i))
			}

			start()
			carol = c.Login(t, "carol")
			want := map[string]int{"alice": n, "bob": n, "carol": 5}
			for _, viewer := range []*hstest.Client{alice, bob, carol} {
				hstest.Eventually(t, "every message on "+viewer.UserID+"'s server", func() bool {
					return len(viewer.MessageBodies(room)) >= 2*n+5
				})
				if msg := onceInOrder(viewer.MessageBodies(room), want); msg != "" {
					t.Errorf("on %s's server: %s", viewer.UserID, msg)
				}
			}
		})
	}
}

// member reads user's membership in roomID on c's server ("" when none).
func member(c *hstest.Client, roomID, user string) string {
	code, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/state/m.room.member/"+hstest.Esc(user), nil)
	if code != 200 {
		return ""
	}
	return res.Get("membership").String()
}

// onceInOrder reports what is wrong with bodies ("<sender>-<i>"): each
// sender's want[sender] messages must appear once each, in order.
func onceInOrder(bodies []string, want map[string]int) string {
	next := map[string]int{}
	for _, b := range bodies {
		sender, idx, _ := strings.Cut(b, "-")
		if idx != fmt.Sprint(next[sender]) {
			return fmt.Sprintf("%s where %s-%d was due (all: %v)", b, sender, next[sender], bodies)
		}
		next[sender]++
	}
	for s, n := range want {
		if next[s] != n {
			return fmt.Sprintf("%d messages from %s, want %d (all: %v)", next[s], s, n, bodies)
		}
	}
	if len(next) != len(want) {
		return fmt.Sprintf("senders %v, want %v", next, want)
	}
	return ""
}

// freeHostAddr returns a free host:port on host (a loopback address).
func freeHostAddr(t *testing.T, host string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
