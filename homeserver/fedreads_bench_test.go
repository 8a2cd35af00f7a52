package homeserver_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

// BenchmarkServerBackfill measures the room service answering another
// server's backfill of 100 events (rooms.ServerBackfill: the ACL, the walk
// over prev_events and the history-visibility check per state group), in
// a world_readable room of 120 messages on SQLite, without HTTP.
func BenchmarkServerBackfill(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{})
	alice := srv.Register(b, "alice")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11",
		"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "world_readable"}}}})
	var last string
	for i := range 120 {
		last = alice.Send(room, fmt.Sprint("t", i), "history")
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := srv.Srv.Rooms.ServerBackfill(ctx, "remote.example", room, []string{last}, rooms.MaxBackfill)
		if err != nil || len(got) != rooms.MaxBackfill {
			b.Fatalf("ServerBackfill = %d events, %v; want %d", len(got), err, rooms.MaxBackfill)
		}
	}
}
