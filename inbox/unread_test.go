package inbox

import (
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// TestUnreadCacheKeepsNoStaleRead: a count read from the database while a
// receipt or a redaction commits may already reflect it, so it is not kept;
// a read with nothing in between is kept and then carried forward in memory.
func TestUnreadCacheKeepsNoStaleRead(t *testing.T) {
	const user, room = "@u:x", "!r:x"
	tests := []struct {
		name    string
		between func(c *unreadCache)
		kept    bool
	}{
		{"nothing in between", func(*unreadCache) {}, true},
		{"own receipt", func(c *unreadCache) { c.forget(user, room) }, false},
		{"someone else's receipt", func(c *unreadCache) { c.forget("@v:x", room) }, true},
		{"redaction", func(c *unreadCache) {
			c.noteEvent(&rooms.CommittedEvent{RoomID: room, Pos: 11, Type: "m.room.redaction"})
		}, false},
		{"receipt of unknown owner", func(c *unreadCache) { c.voidRoom(room) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newUnreadCache(0)
			c.noteEvent(&rooms.CommittedEvent{RoomID: room, Pos: 5, Type: "m.room.message", Sender: "@v:x", Notify: true})
			out := map[string]storage.RoomUnread{}
			missed := c.lookup(user, []string{room}, 10, out, nil)
			if len(missed) != 1 {
				t.Fatalf("first lookup missed %d rooms, want 1", len(missed))
			}
			tt.between(c)
			c.keep(user, missed, 10, map[string]storage.RoomUnread{room: {Main: storage.Unread{Notifications: 1}}})
			c.noteEvent(&rooms.CommittedEvent{RoomID: room, Pos: 12, Type: "m.room.message", Sender: "@v:x",
				Mentions: []string{user}})
			clear(out)
			missed = c.lookup(user, []string{room}, 12, out, nil)
			if got := len(missed) == 0; got != tt.kept {
				t.Fatalf("answered from memory = %v, want %v", got, tt.kept)
			}
			if tt.kept {
				if got, want := out[room].Main, (storage.Unread{Notifications: 2, Highlights: 1}); got != want {
					t.Errorf("count = %+v, want %+v", got, want)
				}
			}
		})
	}
}

// TestUnreadCacheTrims: past the per-room bound the oldest events go, and
// an entry older than what is held asks the database again.
func TestUnreadCacheTrims(t *testing.T) {
	const user, room = "@u:x", "!r:x"
	c := newUnreadCache(0)
	missed := c.lookup(user, []string{room}, 1, map[string]storage.RoomUnread{}, nil)
	c.keep(user, missed, 1, map[string]storage.RoomUnread{})
	for pos := int64(2); pos < 2+unreadPerRoom+1; pos++ {
		c.noteEvent(&rooms.CommittedEvent{RoomID: room, Pos: pos, Type: "m.room.message", Sender: "@v:x", Notify: true})
	}
	if missed := c.lookup(user, []string{room}, 2+unreadPerRoom, map[string]storage.RoomUnread{}, nil); len(missed) != 1 {
		t.Errorf("lookup past the trimmed events missed %d rooms, want 1", len(missed))
	}
}

// TestUnreadCacheCarriesOverBoundedly: a kept count is carried over up to
// unreadMaxDelta events; further back the database is asked.
func TestUnreadCacheCarriesOverBoundedly(t *testing.T) {
	const user, room = "@u:x", "!r:x"
	for _, n := range []int{1, unreadMaxDelta, unreadMaxDelta + 1} {
		c := newUnreadCache(0)
		missed := c.lookup(user, []string{room}, 1, map[string]storage.RoomUnread{}, nil)
		c.keep(user, missed, 1, map[string]storage.RoomUnread{room: {Main: storage.Unread{Notifications: 1}}})
		for pos := int64(2); pos < 2+int64(n); pos++ {
			c.noteEvent(&rooms.CommittedEvent{RoomID: room, Pos: pos, Type: "m.room.message", Sender: "@v:x", Notify: true})
		}
		out := map[string]storage.RoomUnread{}
		missed = c.lookup(user, []string{room}, 1+int64(n), out, nil)
		if hit, want := len(missed) == 0, n <= unreadMaxDelta; hit != want {
			t.Errorf("%d events later: answered from memory = %v, want %v", n, hit, want)
		}
		if len(missed) == 0 && out[room].Main.Notifications != int64(1+n) {
			t.Errorf("%d events later: count = %d, want %d", n, out[room].Main.Notifications, 1+n)
		}
	}
}

// BenchmarkUnreadLookup: a woken member's count carried forward in memory
// over 16 new events, without threads and with half of them in threads
// (where the thread map is copied once per lookup).
func BenchmarkUnreadLookup(b *testing.B) {
	const user, room = "@u:x", "!r:x"
	for _, threaded := range []bool{false, true} {
		name := "main"
		if threaded {
			name = "threads"
		}
		b.Run(name, func(b *testing.B) {
			c := newUnreadCache(0)
			out := map[string]storage.RoomUnread{}
			ids := []string{room}
			b.ReportAllocs()
			for i := range b.N {
				base := int64(i) * 17
				c.forget(user, room)
				missed := c.lookup(user, ids, base+1, out, nil)
				c.keep(user, missed, base+1, map[string]storage.RoomUnread{})
				for k := int64(2); k <= 17; k++ {
					ev := &rooms.CommittedEvent{RoomID: room, Pos: base + k, Type: "m.room.message", Sender: "@v:x", Notify: true}
					if threaded && k%2 == 0 {
						ev.Thread = "$root"
					}
					c.noteEvent(ev)
				}
				if missed := c.lookup(user, ids, base+17, out, nil); len(missed) != 0 {
					b.Fatalf("lookup missed %d rooms, want 0", len(missed))
				}
			}
		})
	}
}
