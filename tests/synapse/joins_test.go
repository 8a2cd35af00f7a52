package synapse_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/tests/interop"
)

// roomVersions are the versions the interop tests cover: Synapse's
// default (12) and the one before it.
var roomVersions = []string{"12", "11"}

// TestSynapseJoins: joins both ways, by room ID and by alias, in room
// versions 12 and 11. After each join both servers hold the same /state,
// event IDs included, and messages go both ways within 2 s.
func TestSynapseJoins(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			bob := syn.Register(t, uniq("bob"))
			for _, rv := range roomVersions {
				t.Run("v"+rv, func(t *testing.T) {
					t.Run("Parley joins a Synapse room", func(t *testing.T) {
						alice, bob := alice.WithT(t), bob.WithT(t)
						room := bob.CreateRoom(map[string]any{"preset": "public_chat", "room_version": rv})
						if st, res := joinVia(alice, room, syn.Name); st != 200 {
							t.Fatalf("Parley join %s via %s = %d %s, want 200", room, syn.Name, st, res.Raw)
						}
						waitMembership(t, bob, room, alice.UserID, "join")
						sameState(t, alice, bob, room)
						messagesBothWays(t, alice, bob, room)
					})
					t.Run("Synapse joins a Parley room", func(t *testing.T) {
						alice, bob := alice.WithT(t), bob.WithT(t)
						room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": rv})
						if st, res := joinVia(bob, room, p.FedName); st != 200 {
							t.Fatalf("Synapse join %s via %s = %d %s, want 200", room, p.FedName, st, res.Raw)
						}
						waitMembership(t, alice, room, bob.UserID, "join")
						sameState(t, alice, bob, room)
						messagesBothWays(t, alice, bob, room)
					})
				})
			}
			t.Run("Synapse joins a Parley alias", func(t *testing.T) {
				alice, bob := alice.WithT(t), bob.WithT(t)
				local := uniq("lobby")
				room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": local})
				if got := bob.Join("#" + local + ":" + p.FedName); got != room {
					t.Fatalf("Synapse joined %s, want %s", got, room)
				}
				waitMembership(t, alice, room, bob.UserID, "join")
				sameState(t, alice, bob, room)
			})
			t.Run("Parley joins a Synapse alias", func(t *testing.T) {
				alice, bob := alice.WithT(t), bob.WithT(t)
				local := uniq("hall")
				room := bob.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": local})
				if got := alice.Join("#" + local + ":" + syn.Name); got != room {
					t.Fatalf("Parley joined %s, want %s", got, room)
				}
				waitMembership(t, bob, room, alice.UserID, "join")
				sameState(t, alice, bob, room)
			})
		})
	}
}

// messagesBothWays sends a message from each side and checks the other
// side's server shows it within 2 s (polled, not slept).
func messagesBothWays(t *testing.T, a, b *hstest.Client, room string) {
	t.Helper()
	interop.MessagesBothWays(t, a, b, room, 2*time.Second)
}
