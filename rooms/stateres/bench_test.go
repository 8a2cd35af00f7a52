package stateres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// bigRoom is built once per process: building and signing 10,000 member
// events takes about a second, which must stay outside the timer.
var bigRoom struct {
	members int
	d       *dag
	sets    []StateMap
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchMembers is the room size: 10,000 unless PARLEY_BENCH_STATERES_MEMBERS
// says otherwise.
func benchMembers() int {
	if n, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_STATERES_MEMBERS")); err == nil && n >= 100 {
		return n
	}
	return 10_000
}

// forkedBigRoom returns two forks of a room of n members that differ in
// 100 state events: on each fork 50 different members change their display
// name, and on one fork alice also changes the power levels, so that the
// member changes are sorted against a new mainline.
func forkedBigRoom(b *testing.B, n int) (*dag, []StateMap) {
	if bigRoom.members == n {
		return bigRoom.d, bigRoom.sets
	}
	base := newRoom(b)
	for i := range n {
		u := fmt.Sprintf("@user%05d:example.org", i)
		base.send(u, "m.room.member", u, `{"membership":"join"}`)
	}
	a, c := base.clone(), base.clone()
	a.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50},"state_default":50}`)
	for i := range 50 {
		u := fmt.Sprintf("@user%05d:example.org", i)
		a.send(u, "m.room.member", u, `{"membership":"join","displayname":"A"}`)
		v := fmt.Sprintf("@user%05d:example.org", n-1-i)
		c.send(v, "m.room.member", v, `{"membership":"join","displayname":"C"}`)
	}
	bigRoom.members, bigRoom.d, bigRoom.sets = n, base.d, []StateMap{a.state, c.state}
	return bigRoom.d, bigRoom.sets
}

// BenchmarkResolve10kMembers resolves two forks of a 10,000-member room
// that differ in 100 state events (goal: under 100 ms per resolution).
func BenchmarkResolve10kMembers(b *testing.B) {
	for _, alg := range []struct {
		name string
		p    params
	}{{"v2", v2}, {"v2.1", v21}} {
		b.Run(alg.name, func(b *testing.B) {
			d, sets := forkedBigRoom(b, benchMembers())
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for b.Loop() {
				got, err := resolve(context.Background(), alg.p, sets, d)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) < benchMembers() {
					b.Fatalf("resolved state has %d entries, want at least %d", len(got), benchMembers())
				}
			}
			// CPU time, unlike ns/op, stays meaningful when other processes
			// load the machine (it includes the GC's threads).
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// TestResolveBigRoomAnswer checks the benchmark's answer on a smaller room:
// every display name change from both forks survives.
func TestResolveBigRoomAnswer(t *testing.T) {
	base := newRoom(t)
	for i := range 200 {
		u := fmt.Sprintf("@user%05d:example.org", i)
		base.send(u, "m.room.member", u, `{"membership":"join"}`)
	}
	a, c := base.clone(), base.clone()
	pl := a.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50},"state_default":50}`)
	var want []string
	for i := range 50 {
		u := fmt.Sprintf("@user%05d:example.org", i)
		want = append(want, a.send(u, "m.room.member", u, `{"membership":"join","displayname":"A"}`).ID)
		v := fmt.Sprintf("@user%05d:example.org", 199-i)
		want = append(want, c.send(v, "m.room.member", v, `{"membership":"join","displayname":"C"}`).ID)
	}
	for _, p := range []params{v2, v21} {
		calls := base.d.calls
		got, err := resolve(context.Background(), p, []StateMap{a.state, c.state}, base.d)
		if err != nil {
			t.Fatal(err)
		}
		// The loader is asked per DAG level and per checked event, never
		// per unconflicted event.
		if n := base.d.calls - calls; n > 20 {
			t.Errorf("%+v: %d loader calls, want at most 20 (one per DAG level and few more)", p, n)
		} else {
			t.Logf("%+v: %d loader calls", p, n)
		}
		if got[plKey] != pl.ID {
			t.Errorf("%+v: power levels = %s, want %s", p, got[plKey], pl.ID)
		}
		for _, id := range want {
			ev := base.d.events[id]
			if k := key(ev.Type, *ev.StateKey); got[k] != id {
				t.Errorf("%+v: %v = %s, want %s", p, k, got[k], id)
			}
		}
		if len(got) != len(a.state) {
			t.Errorf("%+v: %d state entries, want %d", p, len(got), len(a.state))
		}
	}
}

// BenchmarkResolveSmall is the everyday case: a small room whose two forks
// differ in one topic each.
func BenchmarkResolveSmall(b *testing.B) {
	base := newRoom(b)
	x, y := base.clone(), base.clone()
	x.send(alice, "m.room.topic", "", `{"topic":"x"}`)
	y.send(mod, "m.room.topic", "", `{"topic":"y"}`)
	sets := []StateMap{x.state, y.state}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(context.Background(), "11", sets, base.d); err != nil {
			b.Fatal(err)
		}
	}
}
