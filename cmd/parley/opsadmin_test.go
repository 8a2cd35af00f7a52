package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

// TestOpsSubcommands runs parley user deactivate, room list, room delete
// and media purge in-process on both stores: each does what the admin API
// does and is audited with the actor "cli"; the two that write room
// events refuse while a server answers at the configured address.
func TestOpsSubcommands(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "parley.yaml")
			if err := os.WriteFile(cfgFile, []byte("passwords:\n  argon2_memory_kib: 64\n  argon2_time: 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0") // stands for a running server
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"PARLEY_DATA_DIR": dir, "PARLEY_DATABASE_URL": store.URL, "PARLEY_SERVER_NAME": "example.org",
				"PARLEY_LISTEN": ln.Addr().String()}
			getenv := func(k string) string { return env[k] }
			cli := func(args ...string) (string, error) {
				var out bytes.Buffer
				err := run(context.Background(), append(args, "--config", cfgFile), &out, &out, getenv)
				return out.String(), err
			}
			for _, name := range []string{"alice", "bob"} {
				if out, err := cli("user", "add", name, "--password", "pw-"+name); err != nil {
					t.Fatalf("user add %s: %v\n%s", name, err, out)
				}
			}
			srv, err := openServer(context.Background(), cfgFile, getenv)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			room, err := srv.Rooms.CreateRoom(ctx, rooms.CreateRequest{Creator: "@alice:example.org", Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: room, Sender: "@bob:example.org", Target: "@bob:example.org", Membership: "join"}); err != nil {
				t.Fatal(err)
			}
			srv.Shutdown(ctx)

			// A server answers /healthz at the listen address: both refuse.
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })}
			go hs.Serve(ln)
			for _, args := range [][]string{{"user", "deactivate", "alice"}, {"room", "delete", room}} {
				if out, err := cli(args...); err == nil || !strings.Contains(err.Error(), "a server is running") {
					t.Errorf("%v beside a running server = %v\n%s, want a refusal", args, err, out)
				}
			}
			hs.Close()

			out, err := cli("room", "list")
			if err != nil || !strings.Contains(out, room) {
				t.Errorf("room list = %v\n%s\nwant %s", err, out, room)
			}
			out, err = cli("room", "delete", room)
			if err != nil || !strings.Contains(out, "members out: 2/2") || !strings.Contains(out, "2 members out") {
				t.Errorf("room delete = %v\n%s\nwant progress and 2 members out", err, out)
			}
			if out, err := cli("room", "delete", "!nope:example.org"); err == nil {
				t.Errorf("room delete of an unknown room succeeded: %s", out)
			}
			out, err = cli("user", "deactivate", "bob", "--erase")
			if err != nil || !strings.Contains(out, "deactivated @bob:example.org") {
				t.Errorf("user deactivate = %v\n%s", err, out)
			}
			if out, err := cli("media", "purge"); err == nil {
				t.Errorf("media purge without criteria succeeded: %s", out)
			}
			out, err = cli("media", "purge", "--before", "2000-01-01")
			if err != nil || !strings.Contains(out, "deleted 0 media items") {
				t.Errorf("media purge --before = %v\n%s", err, out)
			}

			srv, err = openServer(ctx, cfgFile, getenv)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(ctx)
			u, err := srv.Store.GetUser(ctx, "@bob:example.org")
			if err != nil || !u.Deactivated {
				t.Errorf("bob after deactivate = %+v, %v; want deactivated", u, err)
			}
			if !srv.Rooms.RoomBlocked(room) {
				t.Errorf("room after delete is not blocked")
			}
			for target, action := range map[string]string{room: "room.delete", "@bob:example.org": "user.deactivate", "media": "media.purge"} {
				rows, err := srv.Store.AuditLog(ctx, 0, target, 10)
				if err != nil || len(rows) == 0 || rows[0].Actor != "cli" || rows[0].Action != action {
					t.Errorf("audit of %s = %+v (%v), want %s by cli", target, rows, err, action)
				}
			}
		})
	}
}
