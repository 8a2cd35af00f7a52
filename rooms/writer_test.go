package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// newTestService starts a writer on a fresh SQLite store.
func newTestService(t testing.TB, cfg Config) *Service {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := storage.Open(ctx, "", filepath.Join(dir, "parley.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	key, err := pdu.LoadOrCreateKey(filepath.Join(dir, "signing.key"), "test.local")
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	cfg.ServerName, cfg.Key, cfg.Store = "test.local", key, store
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		store.Close()
	})
	return s
}

// blockWriter occupies the writer with a job that waits until the returned
// release is called, so that the test can line up a queue behind it.
func blockWriter(t *testing.T, s *Service) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.submit(context.Background(), "blocker", func(context.Context, *batch) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			if err := <-done; err != nil {
				t.Errorf("blocking job: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitDepth polls until n writes are queued.
func waitDepth(t *testing.T, s *Service, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.QueueDepth() != n {
		if time.Now().After(deadline) {
			t.Fatalf("QueueDepth() = %d, want %d", s.QueueDepth(), n)
		}
		time.Sleep(time.Millisecond) // polling, not waiting for an outcome
	}
}

// TestWriterServesUsersInTurn: a user with a long backlog does not make a
// user with one write wait for all of it. With one FIFO (the old writer),
// B's write ran after all fifty of A's.
func TestWriterServesUsersInTurn(t *testing.T) {
	s := newTestService(t, Config{MaxBatch: 4})
	release := blockWriter(t, s)

	var order []string // appended by the writer goroutine only
	var wg sync.WaitGroup
	submit := func(user string) {
		wg.Go(func() {
			err := s.submit(context.Background(), user, func(context.Context, *batch) error {
				order = append(order, user)
				return nil
			})
			if err != nil {
				t.Errorf("submit(%s): %v", user, err)
			}
		})
	}
	for range 50 {
		submit("@a:test.local")
	}
	waitDepth(t, s, 50)
	submit("@b:test.local")
	waitDepth(t, s, 51)
	release()
	wg.Wait()

	at := -1
	for i, u := range order {
		if u == "@b:test.local" {
			at = i
		}
	}
	if at < 0 || at > 1 {
		t.Errorf("B's only write ran as write %d of %d, want within the first batch's first turn (0 or 1)", at, len(order))
	}
}

// TestWriterRefusesBeyondBacklog: a user over their backlog share gets
// ErrBusy, and a full queue refuses everyone with ErrOverloaded; nothing
// refused runs, and everything accepted commits.
func TestWriterRefusesBeyondBacklog(t *testing.T) {
	s := newTestService(t, Config{MaxQueue: 5, MaxQueuePerUser: 3})
	release := blockWriter(t, s)

	var ran sync.Map
	var wg sync.WaitGroup
	accepted := func(user string, i int) {
		wg.Go(func() {
			err := s.submit(context.Background(), user, func(context.Context, *batch) error {
				ran.Store(fmt.Sprint(user, i), true)
				return nil
			})
			if err != nil {
				t.Errorf("submit(%s #%d) = %v, want nil", user, i, err)
			}
		})
	}
	refused := func(user string, want error) {
		t.Helper()
		err := s.submit(context.Background(), user, func(context.Context, *batch) error {
			ran.Store("refused "+user, true)
			return nil
		})
		if !errors.Is(err, want) {
			t.Errorf("submit(%s) = %v, want %v", user, err, want)
		}
	}
	for i := range 3 {
		accepted("@a:x", i)
	}
	waitDepth(t, s, 3)
	refused("@a:x", ErrBusy)
	for i := range 2 {
		accepted("@b:x", i)
	}
	waitDepth(t, s, 5)
	refused("@c:x", ErrOverloaded)
	release()
	wg.Wait()
	n := 0
	ran.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), "refused") {
			t.Errorf("a refused write ran: %s", k)
		}
		n++
		return true
	})
	if n != 5 {
		t.Errorf("%d writes ran, want the 5 accepted", n)
	}
}

// TestRoomCacheEvictsAndReloads: the writer's room cache stays under its
// byte bound, and an evicted room is reloaded from the store with its state
// intact (the creator can still rename it; a stranger still cannot write).
func TestRoomCacheEvictsAndReloads(t *testing.T) {
	const bound = 96 << 10
	s := newTestService(t, Config{CacheBytes: bound})
	ctx := context.Background()
	filler := strings.Repeat("x", 2000)
	var ids []string
	for i := range 12 {
		var state []StateEvent
		for k := range 5 {
			state = append(state, StateEvent{Type: "org.example.filler", StateKey: fmt.Sprint(k), Content: json.RawMessage(`{"f":"` + filler + `"}`)})
		}
		id, err := s.CreateRoom(ctx, CreateRequest{Creator: "@alice:test.local", Name: fmt.Sprint("room ", i), InitialState: state})
		if err != nil {
			t.Fatalf("CreateRoom %d: %v", i, err)
		}
		ids = append(ids, id)
		checkCacheAccounting(t, s)
	}
	st := s.CacheStats()
	if st.Bytes > bound || st.Evictions == 0 || st.Rooms >= 12 {
		t.Errorf("CacheStats() = %+v, want Bytes <= %d, some evictions, fewer than 12 rooms", st, bound)
	}

	// The first room was the least recently used, so it is gone: writing to
	// it reloads it.
	loads := st.Loads
	name := "m.room.name"
	if _, err := s.Send(ctx, SendRequest{RoomID: ids[0], Sender: "@alice:test.local", Type: name, StateKey: strPtr(""), Content: json.RawMessage(`{"name":"renamed"}`)}); err != nil {
		t.Fatalf("rename an evicted room: %v", err)
	}
	if got := s.CacheStats().Loads; got != loads+1 {
		t.Errorf("Loads = %d after writing to an evicted room, want %d", got, loads+1)
	}
	_, err := s.Send(ctx, SendRequest{RoomID: ids[0], Sender: "@mallory:test.local", Type: "m.room.message", Content: json.RawMessage(`{"body":"hi"}`)})
	// A non-member is refused as if the room did not exist (no probing).
	if !errors.Is(err, ErrUnknownRoom) {
		t.Errorf("stranger's send to a reloaded room = %v, want ErrUnknownRoom", err)
	}
	checkCacheAccounting(t, s)
}

// checkCacheAccounting recomputes, on the writer goroutine, what the cache's
// counters should be.
func checkCacheAccounting(t *testing.T, s *Service) {
	t.Helper()
	err := s.submit(context.Background(), "", func(context.Context, *batch) error {
		var total int64
		for id, rs := range s.cache.rooms {
			want := int64(roomOverhead)
			for _, e := range rs.state {
				want += entryBytes(e.ev)
			}
			if rs.bytes != want {
				t.Errorf("room %s: bytes = %d, want %d", id, rs.bytes, want)
			}
			total += rs.bytes
		}
		if s.cache.bytes != total {
			t.Errorf("cache bytes = %d, want the rooms' sum %d", s.cache.bytes, total)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCreateRoomJobBounded: an initial_state over the cap is refused before
// it reaches the writer, and nothing is written.
func TestCreateRoomJobBounded(t *testing.T) {
	s := newTestService(t, Config{Limits: Limits{MaxInitialState: 3, MaxCreateInvites: 2}})
	ctx := context.Background()
	state := make([]StateEvent, 4)
	for i := range state {
		state[i] = StateEvent{Type: "org.example.s", StateKey: fmt.Sprint(i)}
	}
	for _, tc := range []struct {
		name string
		req  CreateRequest
	}{
		{"initial_state", CreateRequest{Creator: "@a:test.local", InitialState: state}},
		{"invite", CreateRequest{Creator: "@a:test.local", Invite: []string{"@b:test.local", "@c:test.local", "@d:test.local"}}},
	} {
		if _, err := s.CreateRoom(ctx, tc.req); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: CreateRoom = %v, want ErrTooLarge", tc.name, err)
		}
	}
	if st := s.CacheStats(); st.Loads != 0 {
		t.Errorf("CacheStats().Loads = %d after refused creates, want 0", st.Loads)
	}
}

// TestFairQueueHeavyNotStarved: light jobs pass a heavy one at most twice
// (once in turn, once by stepping ahead), not for ever, however many keep
// arriving.
func TestFairQueueHeavyNotStarved(t *testing.T) {
	q := newFairQueue(100, 100)
	push := func(user string, cost int) {
		if err := q.push(user, &job{cost: cost}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 5 {
		push("heavy", 100)
		takes := 0
		for {
			push("light", 1) // a light job is always waiting
			got := q.take(nil, 10, 128)
			takes++
			if len(got) == 1 && got[0].cost == 100 {
				break
			}
			if takes > 2 {
				t.Fatalf("round %d: the heavy job was passed %d times, want at most 2", round, takes)
			}
		}
	}
}

func TestFairQueueTakeBoundsCost(t *testing.T) {
	q := newFairQueue(100, 100)
	for _, c := range []struct {
		user string
		cost int
	}{{"a", 300}, {"b", 1}, {"a", 1}, {"c", 600}, {"b", 1}} {
		if err := q.push(c.user, &job{cost: c.cost}); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]int
	for q.len() > 0 {
		var costs []int
		for _, j := range q.take(nil, 10, 512) {
			costs = append(costs, j.cost)
		}
		got = append(got, costs)
	}
	// a(300) is first in turn but heavy (a quarter of 512 or more), so the
	// light jobs behind it go first: both of b's. Then a(300) alone; then c
	// is first and heavy, so a's light job goes before it; then c alone.
	want := "[[1 1] [300] [1] [600]]"
	if fmt.Sprint(got) != want {
		t.Errorf("batches by cost = %v, want %s", got, want)
	}
}

// BenchmarkCreateRoomMaxInitialState measures the writer job of the largest
// createRoom allowed by default (50 initial_state events of 1 KB each),
// which a send queued behind it may wait for, on SQLite.
func BenchmarkCreateRoomMaxInitialState(b *testing.B) {
	s := newTestService(b, Config{})
	filler := strings.Repeat("x", 1000)
	state := make([]StateEvent, 50)
	for i := range state {
		state[i] = StateEvent{Type: "org.example.filler", StateKey: fmt.Sprint(i), Content: json.RawMessage(`{"f":"` + filler + `"}`)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.CreateRoom(context.Background(), CreateRequest{Creator: "@alice:test.local", InitialState: state}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoomCacheMemory checks the cache's memory estimate against the
// heap: it creates b.N rooms with 50 state events of 1 KB each, then
// reports the live heap growth per estimated byte (heap/estimate, near 1
// when the estimate is right). Use -benchtime 100x or more.
func BenchmarkRoomCacheMemory(b *testing.B) {
	filler := strings.Repeat("x", 1000)
	state := make([]StateEvent, 50)
	for i := range state {
		state[i] = StateEvent{Type: "org.example.filler", StateKey: fmt.Sprint(i), Content: json.RawMessage(`{"f":"` + filler + `"}`)}
	}
	s := newTestService(b, Config{})
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	b.ResetTimer()
	for range b.N {
		if _, err := s.CreateRoom(context.Background(), CreateRequest{Creator: "@alice:test.local", InitialState: state}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(heap()-before)/float64(s.CacheStats().Bytes), "heap/estimate")
}

// TestCacheAccountsRedactedState: redacting a state event shrinks the
// room's accounted bytes to what the redacted event holds.
func TestCacheAccountsRedactedState(t *testing.T) {
	s := newTestService(t, Config{})
	ctx := context.Background()
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: "@alice:test.local", Topic: strings.Repeat("t", 5000)})
	if err != nil {
		t.Fatal(err)
	}
	topic, err := s.Send(ctx, SendRequest{RoomID: room, Sender: "@alice:test.local", Type: "m.room.topic", StateKey: strPtr(""), Content: json.RawMessage(`{"topic":"` + strings.Repeat("u", 5000) + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	before := s.CacheStats().Bytes
	if _, err := s.Redact(ctx, RedactRequest{RoomID: room, Sender: "@alice:test.local", EventID: topic}); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if after := s.CacheStats().Bytes; after > before-5000 {
		t.Errorf("cache bytes after redacting a 5 KB topic = %d, want at most %d", after, before-5000)
	}
	checkCacheAccounting(t, s)
}

// settle waits until the writer has finished the step after the last
// commit (eviction, publishing the cache's figures): it runs before the
// writer takes the next batch, so a no-op write's commit follows it.
func settle(t *testing.T, s *Service) {
	t.Helper()
	if err := s.submit(context.Background(), "", func(context.Context, *batch) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// realStore is the *storage.Store a test service runs on, for the
// test-only methods (faults, storage counts) the Store interface leaves out.
func realStore(s *Service) *storage.Store { return s.store.(*storage.Store) }
