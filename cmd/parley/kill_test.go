package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestKill9KeepsAcknowledgedSends runs the real binary, sends 100 messages,
// kills the process with SIGKILL right after the last acknowledgement, and
// restarts it: every acknowledged message must be there exactly once, in
// order, and a retried txnId must return the original event.
func TestKill9KeepsAcknowledgedSends(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			cfgFile := filepath.Join(dir, "parley.yaml")
			if err := os.WriteFile(cfgFile, []byte("rate_limit:\n  enabled: false\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			start := func() *exec.Cmd {
				cmd := exec.Command(bin, "serve", "--config", cfgFile)
				cmd.Env = append(os.Environ(), "PARLEY_LISTEN="+addr, "PARLEY_DATA_DIR="+dir,
					"PARLEY_REGISTRATION=open", "PARLEY_DATABASE_URL="+store.URL, "PARLEY_LOG_LEVEL=warn")
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
			srv := &hstest.Server{URL: "http://" + addr}
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"name": "durable"})
			var ids, want []string
			for i := 0; i < 100; i++ {
				body := fmt.Sprintf("durable %03d", i)
				ids = append(ids, alice.Send(room, fmt.Sprint("txn-", i), body))
				want = append(want, body)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			cmd.Wait()

			start()
			orig := alice
			alice = srv.Login(t, "alice")
			got := alice.MessageBodies(room)
			if !slices.Equal(got, want) {
				t.Errorf("after kill -9: %d messages %v, want the 100 acknowledged in order", len(got), got)
			}
			// The same device retrying a txnId after the restart gets the
			// original event: dedup is keyed on the device, so use its token.
			if again := orig.Send(room, "txn-42", "durable 042"); again != ids[42] {
				t.Errorf("txnId retried after restart = %s, want the original %s", again, ids[42])
			}
			if got := alice.MessageBodies(room); len(got) != 100 {
				t.Errorf("after the retry the room has %d messages, want 100", len(got))
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, base string) {
	anon := (&hstest.Server{URL: base}).Anon(t)
	hstest.Eventually(t, "server ready", func() bool {
		c, err := net.DialTimeout("tcp", base[len("http://"):], time.Second)
		if err != nil {
			return false
		}
		c.Close()
		st, _ := anon.Do("GET", "/_matrix/client/versions", nil)
		return st == 200
	})
}
