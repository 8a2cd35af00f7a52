package rooms

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestIdenticalV12CreatesGetDistinctRooms: a version 12 room ID is the hash
// of its create event, so two identical createRoom calls by one user within
// one millisecond (a double-tapped button, a retried request) must still
// make two rooms rather than fail the second on a room that exists.
func TestIdenticalV12CreatesGetDistinctRooms(t *testing.T) {
	fixed := time.UnixMilli(1_790_000_000_000)
	s := newTestService(t, Config{Now: func() time.Time { return fixed }})
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 3 {
		id, err := s.CreateRoom(ctx, CreateRequest{Creator: "@alice:test.local", RoomVersion: "12"})
		if err != nil {
			t.Fatalf("create %d: got %v; want a new room", i, err)
		}
		if seen[id] {
			t.Fatalf("create %d: got room ID %s again; want a distinct room", i, id)
		}
		seen[id] = true
	}
}

// TestDefaultRoomVersion: rooms created without a version take the
// configured default, version 12 unless configured otherwise, and New
// refuses a version Parley does not implement.
func TestDefaultRoomVersion(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ configured, want string }{{"", "12"}, {"11", "11"}, {"10", "10"}} {
		s := newTestService(t, Config{DefaultRoomVersion: tc.configured})
		id, err := s.CreateRoom(ctx, CreateRequest{Creator: "@alice:test.local"})
		if err != nil {
			t.Fatalf("configured %q: create: %v", tc.configured, err)
		}
		room, err := s.store.GetRoom(ctx, id)
		if err != nil {
			t.Fatalf("configured %q: get room: %v", tc.configured, err)
		}
		if room.Version != tc.want || s.DefaultRoomVersion() != tc.want {
			t.Errorf("configured %q: got room version %q, advertised %q; want %q", tc.configured, room.Version, s.DefaultRoomVersion(), tc.want)
		}
	}
	_, err := New(ctx, Config{DefaultRoomVersion: "9"})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("New with room version 9: got %v; want an error", err)
	}
}
