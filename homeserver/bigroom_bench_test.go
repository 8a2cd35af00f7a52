package homeserver_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkBigRoomJoin measures what one member joining a big room costs:
// the join and the first sync after it (timeline limit 10, lazy members), in
// a room that PARLEY_BENCH_ROOM_MEMBERS members (default 200) joined before.
// Issue 15 item 21: with a window function over the room's whole timeline,
// this cost grew with the room, and setting up a 10,000-member room took
// 891 s. Run it at two sizes; the figures should match.
func BenchmarkBigRoomJoin(b *testing.B) {
	members := 200
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_ROOM_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	srv := hstest.Start(b, hstest.Options{})
	owner := srv.Register(b, "owner")
	room := owner.CreateRoom(map[string]any{"preset": "public_chat", "name": "big"})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < members; i += 8 {
				name := fmt.Sprintf("m%d", i)
				if _, err := srv.Srv.CreateUser(context.Background(), name, "pw-"+name, false); err != nil {
					b.Error(err)
					return
				}
				srv.Login(b, name).Join(room)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	filter := `{"room":{"timeline":{"limit":10},"state":{"lazy_load_members":true}}}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("j%d", i)
		if _, err := srv.Srv.CreateUser(context.Background(), name, "pw-"+name, false); err != nil {
			b.Fatal(err)
		}
		c := srv.Login(b, name)
		b.StartTimer()
		c.Join(room)
		s := syncFiltered(c, "", filter)
		if n := len(hstest.Room(s, "join", room).Get("timeline.events").Array()); n != 10 {
			b.Fatalf("first sync after the join has %d timeline events, want 10", n)
		}
	}
}
