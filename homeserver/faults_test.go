package homeserver_test

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestCommitFaultsNeverAcknowledge: while commits fail (a full disk, a
// failing fsync), every send gets an error and none is acknowledged; reads
// and sync keep working; afterwards sends resume, nothing half-written is
// visible, and a retried txnId is stored once.
func TestCommitFaultsNeverAcknowledge(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		for _, fault := range []error{syscall.ENOSPC, syscall.EIO} {
			t.Run(store.Name+"/"+fault.Error(), func(t *testing.T) {
				if store.URL != "" {
					store.URL = hstest.NewPostgresDB(t, postgresAdmin(t))
				}
				srv := hstest.Start(t, hstest.Options{Store: store})
				alice := srv.Register(t, "alice")
				bob := srv.Register(t, "bob")
				room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
				bob.Join(room)
				alice.Send(room, "before", "before the fault")
				since := bob.Sync("", 0).Get("next_batch").String()

				srv.Srv.Store.SetCommitFault(func() error { return fault })
				path := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/send/m.room.message/"
				for i := 0; i < 3; i++ {
					st, res := alice.Do("PUT", path+fmt.Sprint("f", i), map[string]any{"msgtype": "m.text", "body": fmt.Sprint("during ", i)})
					if st < 500 || res.Get("event_id").Exists() {
						t.Errorf("send during %v = %d %s, want a 5xx and no event_id", fault, st, res.Raw)
					}
				}
				if st, res := bob.Do("GET", "/_matrix/client/v3/sync?timeout=0&since="+since, nil); st != 200 {
					t.Errorf("sync during the fault = %d %s, want 200", st, res.Raw)
				}
				if got := pageAll(t, bob, room); !slices.Equal(got, []string{"before the fault"}) {
					t.Errorf("messages during the fault = %v, want only the one before", got)
				}

				srv.Srv.Store.SetCommitFault(nil)
				first := alice.Send(room, "f0", "during 0") // the retry of a send that never committed
				if again := alice.Send(room, "f0", "during 0"); again != first {
					t.Errorf("second retry = %s, want %s", again, first)
				}
				alice.Send(room, "after", "after the fault")
				want := []string{"before the fault", "during 0", "after the fault"}
				if got := pageAll(t, bob, room); !slices.Equal(got, want) {
					t.Errorf("messages after the fault = %v, want %v", got, want)
				}
				s := bob.Sync(since, 0)
				if got := hstest.Bodies(s, room); !slices.Equal(got, want[1:]) {
					t.Errorf("bob's incremental sync = %v, want %v", got, want[1:])
				}
			})
		}
	}
}

func postgresAdmin(t *testing.T) string {
	t.Helper()
	u := os.Getenv("PARLEY_TEST_DATABASE_URL")
	if u == "" {
		t.Skip("PARLEY_TEST_DATABASE_URL not set")
	}
	return u
}
