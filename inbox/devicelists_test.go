package inbox

import (
	"fmt"
	"testing"

	"github.com/parley-im/parley/rooms"
)

// TestNotifierLearnsMembersFromState: members that a commit's state
// changes bring (a federated join's existing members) enter the routing
// tables, so a peer touch of theirs wakes the local member; a state change
// to leave takes them out and marks the room for device_lists.left.
func TestNotifierLearnsMembersFromState(t *testing.T) {
	n := newTestNotifier(t)
	n.Committed(&rooms.Commit{Pos: 1, Events: []rooms.CommittedEvent{member("!r:here", "@local:here", 1)},
		State: []rooms.StateChange{{RoomID: "!r:here", Pos: 1, Type: "m.room.member", StateKey: "@old:there", Membership: "join"}}})
	if !n.SharesRoom("@local:here", "@old:there") || !n.SharesRoomWithSuffix("@old:there", ":here") {
		t.Fatalf("@old:there, joined through the join's state, is not in the routing tables")
	}
	ch := n.subscribe("@local:here")
	n.Committed(&rooms.Commit{Pos: 2, PeerTouches: []rooms.Touch{{ID: "@old:there", Pos: 2, Presence: true}}})
	select {
	case <-ch:
	default:
		t.Errorf("@old:there's presence did not wake @local:here")
	}
	n.Committed(&rooms.Commit{Pos: 3, State: []rooms.StateChange{{RoomID: "!r:here", Pos: 3, Type: "m.room.member", StateKey: "@old:there", Membership: "leave"}}})
	if n.SharesRoom("@local:here", "@old:there") {
		t.Errorf("@old:there still shares a room after leaving")
	}
	if got := n.roomsWithLeavesSince(map[string]int64{"!r:here": 3}, 2); len(got) != 1 {
		t.Errorf("rooms with leaves since 2 = %v, want [!r:here]", got)
	}
}

// BenchmarkRoomsWithLeavesSince is the cost device_lists.left adds to an
// incremental sync of a user in 1,000 rooms where nobody left since the
// token, though somebody left another room.
func BenchmarkRoomsWithLeavesSince(b *testing.B) {
	n := newTestNotifier(b)
	joined := map[string]int64{}
	var evs []rooms.CommittedEvent
	for i := range 1000 {
		room := fmt.Sprintf("!r%d:here", i)
		joined[room] = int64(i + 1)
		evs = append(evs, member(room, "@u:here", int64(i+1)))
	}
	n.Committed(&rooms.Commit{Pos: 1000, Events: evs})
	gone := member("!other:here", "@v:here", 1001)
	gone.Membership = "leave"
	n.Committed(&rooms.Commit{Pos: 1001, Events: []rooms.CommittedEvent{gone}})
	b.ReportAllocs()
	for b.Loop() {
		if got := n.roomsWithLeavesSince(joined, 1000); got != nil {
			b.Fatal(got)
		}
	}
}
