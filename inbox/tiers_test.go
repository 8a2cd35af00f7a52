package inbox

import (
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// TestTierNewsOnlyWhenATierChanged: tierNews names a room only when a
// membership change since the room's token took it across a threshold, in
// either direction.
func TestTierNewsOnlyWhenATierChanged(t *testing.T) {
	n := newTestNotifier(t)
	n.SetTiers(rooms.Tiers{LargeAbove: 2, HugeAbove: 3})
	const room = "!r:x"
	leave := func(user string, pos int64) rooms.CommittedEvent {
		e := member(room, user, pos)
		e.Membership = "leave"
		return e
	}
	commit := func(e rooms.CommittedEvent) {
		n.Committed(&rooms.Commit{Pos: e.Pos, Events: []rooms.CommittedEvent{e}})
	}
	commit(member(room, "@a:x", 1))
	commit(member(room, "@b:x", 2)) // 2: small
	commit(member(room, "@c:x", 3)) // 3: large, a change at 3
	commit(member(room, "@d:x", 4)) // 4: huge, a change at 4
	commit(leave("@d:x", 5))        // 3: large, a change at 5
	commit(leave("@c:x", 6))        // 2: small, a change at 6
	commit(leave("@b:x", 7))        // 1: small, no change

	memberEv := storage.Event{Type: "m.room.member"}
	for _, c := range []struct {
		name      string
		since     int64
		newlyJoin bool
		timeline  []storage.Event
		want      bool
	}{
		{"change after the token", 5, false, []storage.Event{memberEv}, true},
		{"last change before the token", 6, false, []storage.Event{memberEv}, false},
		{"member events filtered out of the timeline", 5, false, []storage.Event{{Type: "m.room.message"}}, true},
		{"initial sync", 0, false, []storage.Event{memberEv}, false},
		{"newly joined", 5, true, []storage.Event{memberEv}, false},
	} {
		rms := map[string]*roomResp{room: {id: room, section: "join", since: c.since, newlyJoin: c.newlyJoin, timeline: c.timeline}}
		if got := n.tierNews(rms, []string{room})[room]; got != c.want {
			t.Errorf("%s: tierNews = %v, want %v", c.name, got, c.want)
		}
	}
	if got := n.tierPos[room]; got != 6 {
		t.Errorf("tierPos = %d, want 6 (the drop back to small)", got)
	}
}
