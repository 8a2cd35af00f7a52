package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCrashHarness runs the whole scenario in-process at a reduced size
// (2,000 sends from 20 clients in 10 rooms, 3 kills) against SQLite, and
// against PostgreSQL when PARLEY_TEST_DATABASE_URL is set. The server binary
// is built with plain `go build`, so under -race only the clients are
// instrumented.
func TestCrashHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parley and kills it with SIGKILL repeatedly")
	}
	bin, err := buildParley(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			cfg := config{Parley: bin, Store: store, Clients: 20, Rooms: 10, Sends: 2000, Kills: 3,
				Seed: 1, Timeout: 100 * time.Second, Progress: testLog{t}}
			if store == "postgres" {
				if admin == "" {
					t.Skip("PARLEY_TEST_DATABASE_URL not set: skipping PostgreSQL")
				}
				cfg.DatabaseURL = admin
			}
			began := time.Now()
			rep, err := run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			rep.writeText(&out)
			t.Logf("in %v:\n%s", time.Since(began).Round(time.Millisecond), out.String())
			if rep.Broken() {
				t.Errorf("a delivery promise is broken (evidence above; work dir %s)", rep.WorkDir)
			}
			if rep.Kills != cfg.Kills || rep.Restarts != cfg.Kills+1 {
				t.Errorf("kills %d, restarts %d; want %d and %d", rep.Kills, rep.Restarts, cfg.Kills, cfg.Kills+1)
			}
			if rep.Acknowledged+rep.Unacknowledged+rep.NotSent != cfg.Sends || rep.Acknowledged == 0 {
				t.Errorf("acknowledged %d + unacknowledged %d + not sent %d, want %d sends in all",
					rep.Acknowledged, rep.Unacknowledged, rep.NotSent, cfg.Sends)
			}
		})
	}
}

// testLog sends the harness's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
