package rooms

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// startOn starts a writer on the SQLite store in dir; stop stops it and
// closes the store, and runs at cleanup if the test did not.
func startOn(t *testing.T, dir string) (s *Service, stop func()) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, "", filepath.Join(dir, "parley.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	key, err := pdu.LoadOrCreateKey(filepath.Join(dir, "signing.key"), "test.local")
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	s, err = New(ctx, Config{ServerName: "test.local", Key: key, Store: store})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		store.Close()
	}
	t.Cleanup(stop)
	return s, stop
}

func sendMessages(t *testing.T, s *Service, room string, n int) {
	t.Helper()
	for i := range n {
		body, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": fmt.Sprint("message number ", i)})
		if _, err := s.Send(context.Background(), SendRequest{RoomID: room, Sender: "@alice:test.local", Type: "m.room.message", Content: body}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

func countDocs(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM search_docs WHERE type = 'm.room.message'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSearchIndexBehindWriter: sends are indexed after they are
// acknowledged: by the writer once it is idle, at once when a search asks
// (SearchIndexed), and, after a stop that left a backlog, by the next start.
func TestSearchIndexBehindWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, stop := startOn(t, dir)
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: "@alice:test.local"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Idle: the writer catches up on its own.
	sendMessages(t, s, room, 5)
	for deadline := time.Now().Add(10 * time.Second); countDocs(t, db) != 5; {
		if time.Now().After(deadline) {
			t.Fatalf("indexed %d messages after the writer went idle, want 5", countDocs(t, db))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A search asks: everything acknowledged before it is in.
	sendMessages(t, s, room, 5)
	if err := s.SearchIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countDocs(t, db); got != 10 {
		t.Fatalf("indexed %d messages after SearchIndexed, want 10", got)
	}

	// A stop with a backlog (made certain by rewinding the watermark, as a
	// crash before the pass would leave it): the next start indexes it.
	sendMessages(t, s, room, 5)
	stop()
	if _, err := db.Exec(`DELETE FROM search_docs`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE search_progress SET indexed_pos = 0`); err != nil {
		t.Fatal(err)
	}
	s, _ = startOn(t, dir)
	if err := s.SearchIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countDocs(t, db); got != 15 {
		t.Fatalf("indexed %d messages after a restart with a backlog, want 15", got)
	}
}
