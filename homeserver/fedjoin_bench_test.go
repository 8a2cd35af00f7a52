package homeserver_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

// BenchmarkFederationJoin: one remote join (make_join, send_join, the
// answer checked and stored on the joining server) into a room of
// PARLEY_BENCH_JOIN_MEMBERS members (default 2, so CI's 100 iterations
// stay short; 1000 and 10000 for the figures in docs/benchmarks.md), on
// SQLite, two servers on loopback. Each iteration joins a fresh room;
// filling it is not timed.
func BenchmarkFederationJoin(b *testing.B) {
	members := 2
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_JOIN_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	st := hstest.Stores(b)[0]
	a := hstest.StartFederating(b, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st.Fresh(b)}})
	bs := hstest.StartFederating(b, hstest.FedOptions{Host: "127.0.0.3", Options: hstest.Options{Store: st.Fresh(b)}})
	alice := a.Register(b, "alice")
	bob := bs.Register(b, "bob")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
		for j := 1; j < members; j++ {
			u := fmt.Sprintf("@m%d_%d:%s", i, j, a.FedName)
			if _, err := a.Srv.Rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: room, Sender: u, Target: u, Membership: "join", ByService: true}); err != nil {
				b.Fatalf("fill the room: %v", err)
			}
		}
		b.StartTimer()
		bob.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(a.FedName), map[string]any{})
	}
}
