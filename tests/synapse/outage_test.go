package synapse_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// outageEvents is how many messages Parley sends while Synapse is down.
const outageEvents = 200

// TestSynapseOutage: Synapse is stopped while a Parley user sends 200
// messages in a room a Synapse user is in. After Synapse starts again,
// Parley's outbound queue catches up: all 200 arrive, in order, none lost.
// It takes tens of seconds (Synapse's restart and Parley's backoff), so
// -short skips it.
func TestSynapseOutage(t *testing.T) {
	syn := needSynapse(t)
	if testing.Short() {
		t.Skip("-short: the outage test restarts Synapse and waits out Parley's backoff")
	}
	p := startParley(t, hstestSQLite)
	alice := p.Register(t, "alice")
	bob := syn.Register(t, uniq("bob"))
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	if st, res := joinVia(bob, room, p.FedName); st != 200 {
		t.Fatalf("Synapse join %s = %d %s, want 200", room, st, res.Raw)
	}
	waitMembership(t, alice, room, bob.UserID, "join")
	messagesBothWays(t, alice, bob, room)

	syn.script(t, "synapse-stop.sh", "--keep")
	stopped := true
	t.Cleanup(func() {
		if stopped { // leave Synapse running for the tests after this one
			syn.script(t, "synapse-start.sh")
		}
	})
	want := make([]string, outageEvents)
	for i := range want {
		want[i] = fmt.Sprintf("outage-%04d", i)
		alice.Send(room, want[i], want[i])
	}
	down := time.Now()
	syn.script(t, "synapse-start.sh")
	stopped = false
	t.Logf("Synapse restarted %v after the last send", time.Since(down).Round(time.Millisecond))

	var got []string
	// Parley's backoff doubles from 2 s (±50 %), so after an outage of
	// about a minute (Synapse restarts slowly on a loaded machine) the next
	// attempt may come 1-2 minutes after the restart.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got = nil
		for _, b := range history(t, bob, room) {
			if len(b) > 7 && b[:7] == "outage-" {
				got = append(got, b)
			}
		}
		if len(got) >= outageEvents || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Synapse holds %d of %d messages %v after the restart began", len(got), outageEvents, time.Since(down).Round(time.Millisecond))
	if !slices.Equal(got, want) {
		t.Fatalf("Synapse holds %d messages (first %q, last %q), want %d from outage-0000 to outage-%04d, in order, once each",
			len(got), first(got), last(got), outageEvents, outageEvents-1)
	}
	// They came through Parley's queue (Synapse acknowledged them), not
	// only through Synapse fetching the gap: the queue is caught up.
	hstest.Eventually(t, "Parley's queue to Synapse caught up", func() bool {
		st, err := p.Srv.Outbound().Status(context.Background(), syn.Name)
		return err == nil && st.CaughtUp && st.Failures == 0
	})
}
