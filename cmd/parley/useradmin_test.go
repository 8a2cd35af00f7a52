package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestUserListAndResetPassword runs parley user list and reset-password
// in-process on both stores: the list shows every account, the reset
// changes the password; user add and the reset are audited with the actor
// "cli".
func TestUserListAndResetPassword(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "parley.yaml")
			if err := os.WriteFile(cfgFile, []byte("passwords:\n  argon2_memory_kib: 64\n  argon2_time: 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"PARLEY_DATA_DIR": dir, "PARLEY_DATABASE_URL": store.URL, "PARLEY_SERVER_NAME": "example.org"}
			cli := func(args ...string) (string, error) {
				var out bytes.Buffer
				err := run(context.Background(), append(args, "--config", cfgFile), &out, &out, func(k string) string { return env[k] })
				return out.String(), err
			}
			for _, name := range []string{"alice", "bob"} {
				if out, err := cli("user", "add", name, "--password", "old-"+name); err != nil {
					t.Fatalf("user add %s: %v\n%s", name, err, out)
				}
			}
			out, err := cli("user", "list")
			if err != nil || !strings.Contains(out, "@alice:example.org") || !strings.Contains(out, "@bob:example.org") {
				t.Errorf("user list = %v\n%s\nwant both users", err, out)
			}
			out, err = cli("user", "list", "--search", "bo")
			if err != nil || strings.Contains(out, "@alice:example.org") || !strings.Contains(out, "@bob:example.org") {
				t.Errorf("user list --search bo = %v\n%s\nwant bob only", err, out)
			}
			if out, err := cli("user", "reset-password", "nobody", "--password", "x"); err == nil {
				t.Errorf("reset-password of an unknown user succeeded: %s", out)
			}
			if out, err := cli("user", "reset-password", "alice", "--password", "new-alice"); err != nil {
				t.Fatalf("reset-password: %v\n%s", err, out)
			}

			srv, err := openServer(context.Background(), cfgFile, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			u, err := srv.Store.GetUser(context.Background(), "@alice:example.org")
			if err != nil {
				t.Fatal(err)
			}
			for pw, want := range map[string]bool{"new-alice": true, "old-alice": false} {
				if ok, err := srv.Hasher.Verify(context.Background(), u.PasswordHash, pw); err != nil || ok != want {
					t.Errorf("password %q matches = %v (%v), want %v", pw, ok, err, want)
				}
			}
			rows, err := srv.Store.AuditLog(context.Background(), 0, "@alice:example.org", 10)
			if err != nil || len(rows) != 2 || rows[0].Actor != "cli" || rows[0].Action != "user.password.reset" ||
				rows[1].Actor != "cli" || rows[1].Action != "user.create" {
				t.Errorf("audit rows = %+v (%v), want user.create then user.password.reset, by cli", rows, err)
			}
		})
	}
}
