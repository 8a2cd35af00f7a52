package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/rooms"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/parley-im/parley/storage"
)

// fakes: one room with one gap, one other server, and a fetcher that
// counts /backfill calls and answers nothing (or fails).
type fakeSource struct{ checks.Source }

func (fakeSource) RoomVersion(context.Context, string) (string, error) { return "11", nil }

type fakeRooms struct{ Rooms }

func (fakeRooms) StateAfterEvent(context.Context, string) (stateres.StateMap, error) {
	return nil, rooms.ErrNoState
}

type fakeStore struct{}

func (fakeStore) BackwardGaps(_ context.Context, ids []string) ([]string, error) { return ids[:1], nil }
func (fakeStore) RoomMemberships(context.Context, string) ([]storage.Membership, error) {
	return []storage.Membership{{UserID: "@a:other.example", Membership: "join", Pos: 1}, {UserID: "@b:here.example", Membership: "join", Pos: 2}}, nil
}

type countingFetcher struct {
	Fetcher
	calls   atomic.Int32
	release chan struct{}
	servers sync.Map
}

func (f *countingFetcher) Backfill(ctx context.Context, server, roomID string, from []string, limit int) ([]json.RawMessage, error) {
	f.calls.Add(1)
	f.servers.Store(server, true)
	<-f.release
	return nil, errors.New("down")
}

// TestFillSharedAndRemembered: concurrent /messages pages that reach the
// same gap make one /backfill request, to the other server only; a gap no
// server could fill answers false (the page is served as held) and is not
// asked about again until RetryAfter has passed.
func TestFillSharedAndRemembered(t *testing.T) {
	f := &countingFetcher{release: make(chan struct{})}
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	b := New(Config{ServerName: "here.example", Fetcher: f, Source: fakeSource{}, Rooms: fakeRooms{}, Store: fakeStore{},
		RetryAfter: time.Minute, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }})
	page := []storage.Event{{EventID: "$join"}}
	var wg sync.WaitGroup
	results := make(chan bool, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- b.Fill(context.Background(), "!r:other.example", page)
		}()
	}
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond) // until the first fetch is in flight
	}
	close(f.release)
	wg.Wait()
	close(results)
	for got := range results {
		if got {
			t.Errorf("Fill = true after a failed fetch, want false")
		}
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("backfill requests for 8 concurrent pages = %d, want 1", got)
	}
	first := f.calls.Load()
	if _, ok := f.servers.Load("here.example"); ok {
		t.Errorf("backfill asked this server itself")
	}
	if b.Fill(context.Background(), "!r:other.example", page); f.calls.Load() != first {
		t.Errorf("a gap that just failed was asked again")
	}
	clock.Lock()
	now = now.Add(2 * time.Minute)
	clock.Unlock()
	if b.Fill(context.Background(), "!r:other.example", page); f.calls.Load() != first+1 {
		t.Errorf("backfill requests after RetryAfter = %d, want %d", f.calls.Load(), first+1)
	}
}
