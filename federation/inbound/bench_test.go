package inbound_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// BenchmarkSendOneRoom is PDUs through /send for one room, over HTTP,
// into the in-memory store: each iteration is one transaction of
// PARLEY_BENCH_TXN_PDUS (default 50) messages extending the room, so
// ns/op divided by that is the time per PDU. The pdus/s metric says it
// directly.
func BenchmarkSendOneRoom(b *testing.B) {
	per := 50
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_TXN_PDUS")); err == nil && v > 0 && v <= 50 {
		per = v
	}
	e := newEnv(b, nil)
	tr := e.newRoom()
	// Build every transaction first: building signs, which is the
	// sender's cost, not ours.
	txns := make([][]*pdu.Event, b.N)
	for i := range txns {
		txns[i] = make([]*pdu.Event, per)
		for j := range txns[i] {
			txns[i][j] = tr.fork.SendMessage(bob, "a typical message, about this long, with nothing special in it")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := e.results(remote.Name, fmt.Sprintf("b%d", i), txns[i]...)
		if len(got) != per {
			b.Fatalf("results = %d, want %d", len(got), per)
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "pdus/s")
}

// BenchmarkSendManyRooms is BenchmarkSendOneRoom with each transaction's
// 50 PDUs spread over 10 rooms, so rooms run in parallel (at most
// MaxRooms, 8, at once).
func BenchmarkSendManyRooms(b *testing.B) {
	const rooms, per = 10, 5
	e := newEnv(b, nil)
	trs := make([]*testRoom, rooms)
	for i := range trs {
		trs[i] = e.newRoom()
	}
	txns := make([][]*pdu.Event, b.N)
	for i := range txns {
		for j := 0; j < per; j++ {
			for _, tr := range trs {
				txns[i] = append(txns[i], tr.fork.SendMessage(bob, "a typical message, about this long, with nothing special in it"))
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := e.results(remote.Name, fmt.Sprintf("m%d", i), txns[i]...); len(got) != rooms*per {
			b.Fatalf("results = %d, want %d", len(got), rooms*per)
		}
	}
	b.ReportMetric(float64(b.N*rooms*per)/b.Elapsed().Seconds(), "pdus/s")
}
