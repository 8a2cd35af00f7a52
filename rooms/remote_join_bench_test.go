package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// BenchmarkPersistJoinedBlocking: while the joining server stores a
// remote join's answer for a room of PARLEY_BENCH_JOIN_MEMBERS members
// (PersistJoined; default 200 so CI's 100 iterations take seconds, below
// joinChunk; 2,000 and 10,000 for docs/benchmarks.md), a local user sends messages to another room
// one after another. max-send-ms is the longest any one send waited: how
// long the join's storing held up every other room's writes.
// join-ms is the storing's own time. The answer's events are built and
// signed before the clock starts (the joining server checks them before
// the writer sees them).
func BenchmarkPersistJoinedBlocking(b *testing.B) {
	members := 200
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_JOIN_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	ctx := context.Background()
	s := newTestService(b, Config{MaxQueuePerUser: 1 << 20, MaxQueue: 1 << 20})
	other, err := s.CreateRoom(ctx, CreateRequest{Creator: "@busy:test.local", Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	var maxSend, joinTotal time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		rj := benchRemoteJoin(b, s.cfg.Key, fmt.Sprintf("!big%d:remote.test", i), members)
		b.StartTimer()
		var done atomic.Bool
		sent := make(chan time.Duration)
		go func() {
			var worst time.Duration
			for n := 0; !done.Load(); n++ {
				t0 := time.Now()
				if _, err := s.Send(ctx, SendRequest{RoomID: other, Sender: "@busy:test.local", Type: "m.room.message",
					Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":"%d"}`, n))}); err != nil {
					b.Error(err)
					break
				}
				worst = max(worst, time.Since(t0))
			}
			sent <- worst
		}()
		t0 := time.Now()
		if _, err := s.PersistJoined(ctx, rj); err != nil {
			b.Fatal(err)
		}
		joinTotal += time.Since(t0)
		done.Store(true)
		maxSend = max(maxSend, <-sent)
	}
	b.ReportMetric(float64(maxSend.Milliseconds()), "max-send-ms")
	b.ReportMetric(float64(joinTotal.Milliseconds())/float64(b.N), "join-ms")
}

// benchRemoteJoin builds a room of another server (remote.test) with
// members joined, as a send_join answer gives it, and the join of
// @joiner:test.local signed by key.
func benchRemoteJoin(b testing.TB, key *pdu.SigningKey, roomID string, members int) RemoteJoin {
	b.Helper()
	rkey := *key
	rkey.ServerName = "remote.test"
	const version = "10"
	rj := RemoteJoin{RoomID: roomID, Version: version, State: map[authrules.StateKey]string{}}
	var prev []string
	depth := int64(0)
	build := func(k *pdu.SigningKey, sender, typ string, stateKey *string, content string) *pdu.Event {
		depth++
		p := pdu.Proto{RoomID: roomID, Sender: sender, Type: typ, StateKey: stateKey, Content: json.RawMessage(content),
			PrevEvents: prev, Depth: depth, OriginServerTS: 1_700_000_000_000 + depth}
		for _, need := range authrules.Needed(typ, stateKey, sender, p.Content) {
			if id := rj.State[need]; id != "" {
				p.AuthEvents = append(p.AuthEvents, id)
			}
		}
		ev, err := pdu.Build(p, version, k)
		if err != nil {
			b.Fatal(err)
		}
		prev = []string{ev.ID}
		return ev
	}
	add := func(ev *pdu.Event) {
		rj.Events = append(rj.Events, ev)
		rj.State[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
	}
	owner := "@owner:remote.test"
	empty := ""
	add(build(&rkey, owner, "m.room.create", &empty, `{"creator":"@owner:remote.test","room_version":"10"}`))
	add(build(&rkey, owner, "m.room.member", &owner, `{"membership":"join"}`))
	add(build(&rkey, owner, "m.room.power_levels", &empty, `{"users":{"@owner:remote.test":100}}`))
	add(build(&rkey, owner, "m.room.join_rules", &empty, `{"join_rule":"public"}`))
	for i := 1; i < members; i++ {
		u := fmt.Sprintf("@m%d:remote.test", i)
		add(build(&rkey, u, "m.room.member", &u, `{"membership":"join"}`))
	}
	joiner := "@joiner:test.local"
	rj.Join = build(key, joiner, "m.room.member", &joiner, `{"membership":"join"}`)
	return rj
}
