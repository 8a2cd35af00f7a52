package outbound_test

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// ServersInRoom lists the remote servers with a joined user in a room,
// for room EDUs (typing): it follows joins and the last user's kick.
func TestOutboundServersInRoom(t *testing.T) {
	f := newFixture(t, hstest.Stores(t)[0], nil)
	alice := f.register("alice")
	room := f.room(alice)
	f.startQueue()
	if got := f.q.ServersInRoom(nil, room); len(got) != 0 {
		t.Errorf("servers in a room of locals only = %v, want none", got)
	}
	f.injectMember(room, "join", "@bob:one.test", "@carol:two.test")
	servers := func() []string {
		got := f.q.ServersInRoom(nil, room)
		slices.Sort(got)
		return got
	}
	hstest.Eventually(t, "both servers in the room", func() bool { return slices.Equal(servers(), []string{"one.test", "two.test"}) })
	changeMember(t, f.srv, room, alice.UserID, "@carol:two.test", "leave")
	hstest.Eventually(t, "two.test gone after its last user's kick", func() bool { return slices.Equal(servers(), []string{"one.test"}) })
}
