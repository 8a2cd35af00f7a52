package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/inbox"
)

// opsEnv is the environment the CLI sees: the test server's data dir and
// database, and a listen address nothing answers at (restore refuses while
// a server answers there).
func opsEnv(dataDir, dbURL string) func(string) string {
	env := map[string]string{"PARLEY_DATA_DIR": dataDir, "PARLEY_DATABASE_URL": dbURL,
		"PARLEY_SERVER_NAME": "localhost", "PARLEY_LISTEN": "127.0.0.1:1"}
	return func(k string) string { return env[k] }
}

func cli(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, &out, getenv)
	return out.String(), err
}

// TestBackupUnderLoadRestores is the proof, on both stores: a
// backup taken while a client keeps sending restores to a server where
// every message acknowledged before the backup started is present exactly
// once, media and the signing key come back, and a sync token from before
// the restore gets a fresh initial sync (the restore renewed the epoch).
// On PostgreSQL the database stays where it is (pg_dump's job); the backup
// holds the keys and media, and restore still renews the epoch.
func TestBackupUnderLoadRestores(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dataDir, backupDir, restoredDir := t.TempDir(), filepath.Join(t.TempDir(), "b"), t.TempDir()
			srv := hstest.Start(t, hstest.Options{Store: store, DataDir: dataDir})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"name": "backed up"})
			mxc := uploadMedia(t, alice, "precious bytes")
			before := alice.Sync("", 0).Get("next_batch").String()
			if tok, err := inbox.ParseToken(before); err != nil || tok.Epoch == "" {
				t.Fatalf("next_batch %q = %+v %v, want a token with an epoch", before, tok, err)
			}

			// The load: one client sending in a loop until told to stop,
			// recording what was acknowledged.
			var mu sync.Mutex
			var acked []string // guarded by mu
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				hc := &http.Client{}
				for i := 0; ; i++ {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					body := fmt.Sprintf("m-%d", i)
					req, _ := http.NewRequest("PUT", srv.URL+"/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/t"+body,
						strings.NewReader(`{"msgtype":"m.text","body":"`+body+`"}`))
					req.Header.Set("Authorization", "Bearer "+alice.Token)
					resp, err := hc.Do(req)
					if err != nil {
						done <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						acked = append(acked, body)
						mu.Unlock()
					}
				}
			}()
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
			hstest.Eventually(t, "20 acknowledged sends", func() bool { return count() >= 20 })
			mu.Lock()
			ackedBefore := append([]string(nil), acked...)
			mu.Unlock()
			out, err := cli(t, opsEnv(dataDir, store.URL), "backup", backupDir)
			if err != nil {
				close(stop)
				t.Fatalf("backup: %v\n%s", err, out)
			}
			t.Logf("backup output:\n%s", out)
			n := count()
			hstest.Eventually(t, "sends after the backup", func() bool { return count() >= n+5 })
			close(stop)
			if err := <-done; err != nil {
				t.Fatalf("sender: %v", err)
			}
			late := alice.Sync(before, 0).Get("next_batch").String() // past everything, including what the backup lacks
			srv.Stop()

			if out, err := cli(t, opsEnv(dataDir, store.URL), "backup", backupDir); err == nil || !strings.Contains(err.Error(), "not empty") {
				t.Errorf("backup into a used dir = %v\n%s\nwant a refusal", err, out)
			}
			if out, err := cli(t, opsEnv(dataDir, store.URL), "restore", backupDir); err == nil || !strings.Contains(err.Error(), "--force") {
				t.Errorf("restore into a non-empty data dir = %v\n%s\nwant a refusal naming --force", err, out)
			}
			if out, err := cli(t, opsEnv(restoredDir, store.URL), "restore", backupDir); err != nil {
				t.Fatalf("restore: %v\n%s", err, out)
			} else if store.URL != "" && !strings.Contains(out, "pg_restore") {
				t.Errorf("restore on PostgreSQL said:\n%s\nwant it to point to pg_restore", out)
			}

			srv2 := hstest.Start(t, hstest.Options{Store: store, DataDir: restoredDir})
			alice2 := srv2.Login(t, "alice")
			seen := map[string]int{}
			for _, b := range alice2.MessageBodies(room) {
				seen[b]++
			}
			for _, b := range ackedBefore {
				if seen[b] != 1 {
					t.Errorf("message %q acknowledged before the backup is present %d times after the restore, want 1", b, seen[b])
				}
			}
			for b, k := range seen {
				if k != 1 {
					t.Errorf("message %q present %d times after the restore, want at most once", b, k)
				}
			}
			t.Logf("%d acknowledged before the backup, %d restored, %d acknowledged in all", len(ackedBefore), len(seen), count())
			if got := downloadMedia(t, alice2, mxc); got != "precious bytes" {
				t.Errorf("media after the restore = %q, want the uploaded bytes", got)
			}
			key1, _ := os.ReadFile(filepath.Join(dataDir, "signing.key"))
			key2, _ := os.ReadFile(filepath.Join(restoredDir, "signing.key"))
			if len(key1) == 0 || !bytes.Equal(key1, key2) {
				t.Errorf("restored signing key differs from the original (%d and %d bytes)", len(key1), len(key2))
			}

			// Tokens from before the restore: a fresh initial sync with the
			// room's state, and a token of the new epoch.
			for name, tok := range map[string]string{"token before the backup": before, "token after the backup": late} {
				res := alice2.Sync(tok, 0)
				joined := hstest.Room(res, "join", room)
				if !joined.Exists() || !hasState(joined, "m.room.create") {
					t.Errorf("sync with the %s = %s\nwant an initial sync with the room's state", name, res.Raw)
				}
				old, _ := inbox.ParseToken(tok)
				next, err := inbox.ParseToken(res.Get("next_batch").String())
				if err != nil || next.Epoch == "" || next.Epoch == old.Epoch {
					t.Errorf("next_batch after the %s = %+v %v, want a new epoch (old %q)", name, next, err, old.Epoch)
				}
			}
			// An old-format token (no epoch) still counts as current.
			cur, _ := inbox.ParseToken(alice2.Sync("", 0).Get("next_batch").String())
			cur.Epoch = ""
			res := alice2.Sync(cur.String(), 0)
			if hstest.Room(res, "join", room).Exists() {
				t.Errorf("incremental sync with an old-format current token = %s, want nothing new", res.Raw)
			}
		})
	}
}

func hasState(room gjson.Result, typ string) bool {
	for _, part := range []string{"state.events", "timeline.events"} {
		for _, e := range room.Get(part).Array() {
			if e.Get("type").String() == typ {
				return true
			}
		}
	}
	return false
}

func uploadMedia(t *testing.T, c *hstest.Client, body string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", c.Base+"/_matrix/media/v3/upload", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("upload = %d %s", resp.StatusCode, raw)
	}
	return gjson.GetBytes(raw, "content_uri").String()
}

func downloadMedia(t *testing.T, c *hstest.Client, mxc string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", c.Base+"/_matrix/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://"), nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, raw)
	}
	return string(raw)
}

// TestRestoreForce: restore refuses while a server answers at the
// configured listen address; with --force it replaces a used SQLite data
// dir, moving the old database, keys and media aside rather than deleting
// them. (The database part is SQLite's: on PostgreSQL restore puts back
// keys and media only, covered by TestBackupUnderLoadRestores.)
func TestRestoreForce(t *testing.T) {
	dataDir, backupDir := t.TempDir(), filepath.Join(t.TempDir(), "b")
	srv := hstest.Start(t, hstest.Options{DataDir: dataDir})
	srv.Register(t, "before")
	if out, err := cli(t, opsEnv(dataDir, ""), "backup", backupDir); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	srv.Register(t, "after")
	running := withEnv(opsEnv(dataDir, ""), "PARLEY_LISTEN", strings.TrimPrefix(srv.URL, "http://"))
	if out, err := cli(t, running, "restore", backupDir, "--force"); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("restore beside a running server = %v\n%s\nwant a refusal", err, out)
	}
	srv.Stop()
	out, err := cli(t, opsEnv(dataDir, ""), "restore", backupDir, "--force")
	if err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	aside, _ := filepath.Glob(filepath.Join(dataDir, "replaced-*", "parley.db"))
	if len(aside) != 1 {
		t.Errorf("old database moved aside = %v, want one replaced-*/parley.db\n%s", aside, out)
	}
	srv2 := hstest.Start(t, hstest.Options{DataDir: dataDir})
	srv2.Login(t, "before")
	if _, err := srv2.Srv.Store.GetUser(context.Background(), "@after:localhost"); err == nil {
		t.Errorf("a user created after the backup exists after restoring it")
	}
}
