package inbox

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

func newTestNotifier(t testing.TB) *Notifier {
	s, err := storage.Open(context.Background(), "", filepath.Join(t.TempDir(), "n.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n, err := NewNotifier(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func member(room, user string, pos int64) rooms.CommittedEvent {
	return rooms.CommittedEvent{RoomID: room, Pos: pos, Type: "m.room.member", StateKey: &user, Membership: "join", Sender: user}
}

// TestNotifierWakesOnlyMembers: a commit in a room wakes that room's
// members and nobody else.
func TestNotifierWakesOnlyMembers(t *testing.T) {
	n := newTestNotifier(t)
	n.Committed(&rooms.Commit{Pos: 2, Events: []rooms.CommittedEvent{member("!a:x", "@in:x", 1), member("!b:x", "@out:x", 2)}})
	since := Token{Pos: 2}
	inCh, outCh := n.subscribe("@in:x"), n.subscribe("@out:x")
	n.Committed(&rooms.Commit{Pos: 3, Events: []rooms.CommittedEvent{{RoomID: "!a:x", Pos: 3, Type: "m.room.message", Sender: "@in:x"}}})
	select {
	case <-inCh:
	default:
		t.Errorf("member of !a was not woken")
	}
	select {
	case <-outCh:
		t.Errorf("non-member was woken")
	default:
	}
	if !n.HasNews("@in:x", since) || n.HasNews("@out:x", since) {
		t.Errorf("HasNews(in, out) = %v, %v; want true, false", n.HasNews("@in:x", since), n.HasNews("@out:x", since))
	}
	if n.Pos() != 3 {
		t.Errorf("Pos = %d, want 3", n.Pos())
	}
}

// BenchmarkNotifierWake measures one commit in a 100-member room waking
// every member's waiting request.
func BenchmarkNotifierWake(b *testing.B) {
	n := newTestNotifier(b)
	var evs []rooms.CommittedEvent
	for i := 0; i < 100; i++ {
		evs = append(evs, member("!r:x", fmt.Sprintf("@u%d:x", i), int64(i+1)))
	}
	n.Committed(&rooms.Commit{Pos: 100, Events: evs})
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("@u%d:x", i)
	}
	pos := int64(100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, u := range users {
			n.subscribe(u)
		}
		pos++
		n.Committed(&rooms.Commit{Pos: pos, Events: []rooms.CommittedEvent{{RoomID: "!r:x", Pos: pos, Type: "m.room.message"}}})
	}
}
