package dendrite_test

import (
	"os"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/tests/interop"
)

// dendrite is the running Dendrite that scripts/dendrite-start.sh exported.
type dendrite struct {
	URL    string // client API, plain HTTP
	Name   string // server name, port included
	Secret string // registration_shared_secret
}

// needDendrite returns the Dendrite to test against, or skips the test
// with the command that starts one.
func needDendrite(t *testing.T) *dendrite {
	t.Helper()
	d := &dendrite{URL: os.Getenv("PARLEY_TEST_DENDRITE_URL"), Name: os.Getenv("PARLEY_TEST_DENDRITE_SERVER_NAME"),
		Secret: os.Getenv("PARLEY_TEST_DENDRITE_SECRET")}
	if d.URL == "" || d.Name == "" || d.Secret == "" {
		t.Skip("PARLEY_TEST_DENDRITE_URL, _SERVER_NAME and _SECRET not set: no Dendrite to test against " +
			`(run: eval "$(scripts/dendrite-start.sh)", or scripts/dendrite-interop.sh)`)
	}
	return d
}

// roomVersion is the one version the Dendrite tests cover: Dendrite
// v0.13.8 knows 11 but not 12.
const roomVersion = "11"

// seenWithin is how soon a message must show on the other server.
const seenWithin = 3 * time.Second

// TestDendriteJoins: in room version 11, a Parley user joins a Dendrite
// room and a Dendrite user joins a Parley room. After each join both
// servers hold the same /state, event IDs included, and messages go both
// ways within a few seconds.
func TestDendriteJoins(t *testing.T) {
	den := needDendrite(t)
	stores := hstest.Stores(t)
	if testing.Short() {
		stores = stores[:1]
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			p := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st}})
			alice := p.Register(t, "alice")
			bob := interop.Register(t, den.URL, den.Secret, interop.Uniq("bob"))
			t.Run("Parley joins a Dendrite room", func(t *testing.T) {
				alice, bob := alice.WithT(t), bob.WithT(t)
				room := bob.CreateRoom(map[string]any{"preset": "public_chat", "room_version": roomVersion})
				if st, res := interop.JoinVia(alice, room, den.Name); st != 200 {
					t.Fatalf("Parley join %s via %s = %d %s, want 200", room, den.Name, st, res.Raw)
				}
				interop.WaitMembership(t, bob, room, alice.UserID, "join")
				interop.SameState(t, alice, bob, room)
				interop.MessagesBothWays(t, alice, bob, room, seenWithin)
			})
			t.Run("Dendrite joins a Parley room", func(t *testing.T) {
				alice, bob := alice.WithT(t), bob.WithT(t)
				room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": roomVersion})
				if st, res := interop.JoinVia(bob, room, p.FedName); st != 200 {
					t.Fatalf("Dendrite join %s via %s = %d %s, want 200", room, p.FedName, st, res.Raw)
				}
				interop.WaitMembership(t, alice, room, bob.UserID, "join")
				interop.SameState(t, alice, bob, room)
				interop.MessagesBothWays(t, alice, bob, room, seenWithin)
			})
		})
	}
}
