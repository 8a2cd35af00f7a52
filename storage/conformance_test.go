package storage_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storagetest"
)

// The conformance suite: every case runs on SQLite and, when
// PARLEY_TEST_DATABASE_URL is set, on PostgreSQL. Both engines must agree.
func forEachEngine(t *testing.T, f func(t *testing.T, s *storage.Store)) {
	t.Helper()
	storagetest.ForEachEngine(t, f)
}

func sk(s string) *string { return &s }

func TestConformance(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		t.Run("users", func(t *testing.T) {
			if err := s.CreateUser(ctx, storage.User{UserID: "@a:x", PasswordHash: "h", CreatedTS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, storage.User{UserID: "@a:x", CreatedTS: 1}); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("CreateUser(dup) = %v, want ErrConflict", err)
			}
			if _, err := s.GetUser(ctx, "@nobody:x"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("GetUser(missing) = %v, want ErrNotFound", err)
			}
			if err := s.CreateDevice(ctx, storage.Device{UserID: "@a:x", DeviceID: "D", TokenHash: "th", CreatedTS: 1}); err != nil {
				t.Fatal(err)
			}
			if d, err := s.DeviceByToken(ctx, "th"); err != nil || d.DeviceID != "D" {
				t.Errorf("DeviceByToken = %v %v, want D", d, err)
			}
			if err := s.SetProfile(ctx, "@a:x", "Ann", "mxc://x/a"); err != nil {
				t.Fatal(err)
			}
			got, err := s.Profiles(ctx, []string{"@a:x", "@nobody:x"})
			if want := map[string]storage.Profile{"@a:x": {DisplayName: "Ann", AvatarURL: "mxc://x/a"}}; err != nil || !maps.Equal(got, want) {
				t.Errorf("Profiles = %v %v, want %v", got, err, want)
			}
			if got, err := s.Profiles(ctx, nil); err != nil || len(got) != 0 {
				t.Errorf("Profiles(none) = %v %v, want empty", got, err)
			}
		})
		t.Run("log, state and txns", func(t *testing.T) {
			tx, err := s.BeginWrite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}))
			events := []storage.Event{
				{Pos: 1, EventID: "$1", RoomID: "!r:x", Type: "m.room.create", StateKey: sk(""), Sender: "@a:x", Depth: 1, Client: []byte(`{}`)},
				{Pos: 2, EventID: "$2", RoomID: "!r:x", Type: "m.room.member", StateKey: sk("@a:x"), Membership: "join", Sender: "@a:x", Depth: 2, Client: []byte(`{}`)},
				{Pos: 3, EventID: "$3", RoomID: "!r:x", Type: "m.room.name", StateKey: sk(""), Sender: "@a:x", Depth: 3, Client: []byte(`{"content":{"name":"one"}}`)},
				{Pos: 4, EventID: "$4", RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x", Depth: 4, Client: []byte(`{}`), Notify: true},
				{Pos: 5, EventID: "$5", RoomID: "!r:x", Type: "m.room.name", StateKey: sk(""), Sender: "@a:x", Depth: 5, Client: []byte(`{"content":{"name":"two"}}`)},
				{Pos: 6, EventID: "$6", RoomID: "!r:x", Type: "m.room.message", Sender: "@b:x", Depth: 6, Client: []byte(`{}`), Notify: true},
			}
			for i := range events {
				must(tx.InsertEvent(ctx, &events[i], []byte(`{}`)))
			}
			must(tx.InsertTxn(ctx, "@a:x", "D", "t1", "$4"))
			if err := tx.InsertTxn(ctx, "@a:x", "D", "t1", "$6"); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("InsertTxn(dup) = %v, want ErrConflict", err)
			}
			tx.Rollback()

			// The rollback above must have left nothing behind.
			if _, err := s.GetRoom(ctx, "!r:x"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("GetRoom after rollback = %v, want ErrNotFound", err)
			}
			tx, _ = s.BeginWrite(ctx)
			must(tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}))
			for i := range events {
				must(tx.InsertEvent(ctx, &events[i], []byte(`{}`)))
			}
			must(tx.InsertTxn(ctx, "@a:x", "D", "t1", "$4"))
			must(tx.Commit())

			if id, err := s.TxnEvent(ctx, "@a:x", "D", "t1"); err != nil || id != "$4" {
				t.Errorf("TxnEvent = %q %v, want $4", id, err)
			}
			state, err := s.StateAt(ctx, "!r:x", 4)
			must(err)
			if len(state) != 3 || state[2].EventID != "$3" {
				t.Errorf("StateAt(4) = %d events ending %s, want 3 ending $3", len(state), state[len(state)-1].EventID)
			}
			cur, err := s.CurrentState(ctx, "!r:x")
			must(err)
			if len(cur) != 3 || cur[2].EventID != "$5" {
				t.Errorf("CurrentState ends with %s, want $5", cur[len(cur)-1].EventID)
			}
			tl, err := s.RoomTimelines(ctx, []storage.RoomBound{{RoomID: "!r:x", Since: 2, Upto: 6}}, 2)
			must(err)
			if len(tl) != 2 || tl[0].EventID != "$5" || tl[1].EventID != "$6" {
				t.Errorf("RoomTimelines = %v, want $5 $6", ids(tl))
			}
			back, err := s.RoomEvents(ctx, "!r:x", 6, 0, true, 2)
			must(err)
			if len(back) != 2 || back[0].EventID != "$5" {
				t.Errorf("RoomEvents(back from 6) = %v, want $5 $4", ids(back))
			}
			un, err := s.UnreadCounts(ctx, "@a:x", []string{"!r:x"}, 6)
			must(err)
			if un["!r:x"].Notifications != 1 {
				t.Errorf("unread for @a = %d, want 1 (own message excluded)", un["!r:x"].Notifications)
			}
			max, err := s.MaxPosition(ctx)
			must(err)
			if max != 6 {
				t.Errorf("MaxPosition = %d, want 6", max)
			}
			ms, err := s.UserMemberships(ctx, "@a:x", "join")
			must(err)
			if len(ms) != 1 || ms[0].Pos != 2 {
				t.Errorf("UserMemberships = %v, want one join at 2", ms)
			}
		})
	})
}

func ids(evs []storage.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}
