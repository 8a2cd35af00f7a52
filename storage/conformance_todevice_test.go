package storage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestConformanceToDeviceLimits(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"device IDs of many users", confDeviceIDs},
		{"expired to-device rows", confExpiredToDevice},
	})
}

func confDeviceIDs(t *testing.T, ctx context.Context, s *storage.Store) {
	for _, d := range []storage.Device{{UserID: "@a:x", DeviceID: "A1", TokenHash: "h1"}, {UserID: "@a:x", DeviceID: "A2", TokenHash: "h2"},
		{UserID: "@b:x", DeviceID: "B1", TokenHash: "h3"}} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	users := []string{"@a:x", "@b:x", "@nobody:x"}
	for i := range 600 { // more than one query's chunk
		users = append(users, "@filler"+string(rune('a'+i%26))+":x")
	}
	got, err := s.DeviceIDs(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got["@a:x"])
	if len(got) != 2 || !slices.Equal(got["@a:x"], []string{"A1", "A2"}) || !slices.Equal(got["@b:x"], []string{"B1"}) {
		t.Errorf("DeviceIDs = %v, want @a:x [A1 A2] and @b:x [B1] only", got)
	}
}

func confExpiredToDevice(t *testing.T, ctx context.Context, s *storage.Store) {
	insertToDevice(t, s,
		storage.ToDevice{Pos: 1, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`, TS: 0}, // from before schema 10
		storage.ToDevice{Pos: 2, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`, TS: 100},
		storage.ToDevice{Pos: 3, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`, TS: 200},
		storage.ToDevice{Pos: 4, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`, TS: 300},
	)
	// Before 250 at time 1000: rows 2 and 3 go, one batch at a time; the
	// old row 1 is stamped 1000 and kept.
	if n, err := s.DeleteExpiredToDevice(ctx, 250, 1000, 1); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredToDevice(limit 1) = %d, %v; want 1", n, err)
	}
	if n, err := s.DeleteExpiredToDevice(ctx, 250, 1000, 10); err != nil || n != 1 {
		t.Fatalf("second DeleteExpiredToDevice = %d, %v; want 1", n, err)
	}
	if got := toDevicePositions(t, s, "@v:x", "D", 0, 10, 10); !slices.Equal(got, []int64{1, 4}) {
		t.Errorf("left after the sweep = %v, want [1 4]", got)
	}
	if n, err := s.DeleteExpiredToDevice(ctx, 1001, 2000, 10); err != nil || n != 2 {
		t.Errorf("DeleteExpiredToDevice(before 1001) = %d, %v; want 2 (the stamped old row and row 4)", n, err)
	}
	if n, err := s.ToDeviceCount(ctx); err != nil || n != 0 {
		t.Errorf("ToDeviceCount = %d, %v; want 0", n, err)
	}
}
