package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// TestUpgradeToDAG writes a room as schema 15 stored it (a linear log) and
// opens the store with today's code: the room gets its extremity (its
// latest event), its events' edges from their PDUs, its current-state
// history for sync, and state reads by position still answer.
func TestUpgradeToDAG(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			url, path := "", filepath.Join(t.TempDir(), "p.db")
			if engine == "postgres" {
				admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
				if admin == "" {
					t.Skip("PARLEY_TEST_DATABASE_URL not set")
				}
				url = hstest.NewPostgresDB(t, admin)
			}
			old, err := storage.OpenAt(ctx, url, path, 15)
			if err != nil {
				t.Fatal(err)
			}
			key := forkKey("x")
			var evs []*pdu.Event
			var prev []string
			add := func(typ string, stateKey *string, content string) {
				var auth []string
				if len(evs) > 0 {
					auth = []string{evs[0].ID}
				}
				ev, err := pdu.Build(pdu.Proto{RoomID: "!old:x", Sender: "@a:x", Type: typ, StateKey: stateKey, Content: []byte(content),
					PrevEvents: prev, AuthEvents: auth, Depth: int64(len(evs) + 1), OriginServerTS: 1000}, "11", key)
				if err != nil {
					t.Fatal(err)
				}
				evs, prev = append(evs, ev), []string{ev.ID}
			}
			add("m.room.create", sk(""), `{"room_version":"11"}`)
			add("m.room.member", sk("@a:x"), `{"membership":"join"}`)
			add("m.room.message", nil, `{"body":"hi"}`)
			add("m.room.topic", sk(""), `{"topic":"t"}`)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(old.Exec(ctx, `INSERT INTO rooms (room_id, room_version, creator, published, created_ts) VALUES ('!old:x','11','@a:x',0,1)`))
			for i, ev := range evs {
				var sk any
				if ev.StateKey != nil {
					sk = *ev.StateKey
				}
				must(old.Exec(ctx, `INSERT INTO events (pos, event_id, room_id, type, state_key, sender, depth, origin_ts, pdu, client)
					VALUES ($1,$2,'!old:x',$3,$4,'@a:x',$5,1000,$6,'{}')`, i+1, ev.ID, ev.Type, sk, ev.Depth, string(ev.Raw)))
				if ev.StateKey != nil {
					must(old.Exec(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, pos) VALUES ('!old:x',$1,$2,$3,$4)`, ev.Type, *ev.StateKey, ev.ID, i+1))
				}
			}
			old.Close()

			s, err := storage.Open(ctx, url, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got, err := s.Extremities(ctx, "!old:x"); err != nil || !slices.Equal(got, []dag.Extremity{{EventID: evs[3].ID, Depth: 4}}) {
				t.Errorf("Extremities = %v %v, want the latest event", got, err)
			}
			p, a, err := s.Edges(ctx, evs[2].ID)
			if err != nil || !slices.Equal(p, []string{evs[1].ID}) || !slices.Equal(a, []string{evs[0].ID}) {
				t.Errorf("Edges(message) = %v %v %v, want its prev and auth events", p, a, err)
			}
			got, err := s.StateEventsIn(ctx, []storage.RoomBound{{RoomID: "!old:x", Since: 1, Upto: 4}})
			if want := []string{evs[1].ID, evs[3].ID}; err != nil || !slices.Equal(ids(got), want) {
				t.Errorf("StateEventsIn(1, 4] = %v %v, want %v", ids(got), err, want)
			}
			got, err = s.StateAt(ctx, "!old:x", 3)
			if want := []string{evs[0].ID, evs[1].ID}; err != nil || !slices.Equal(ids(got), want) {
				t.Errorf("StateAt(3) = %v %v, want %v", ids(got), err, want)
			}
			head, err := s.LoadRoomHead(ctx, "!old:x")
			if err != nil || head.StateGroup != 0 || len(head.State) != 3 {
				t.Errorf("LoadRoomHead = group %d, %d state events, %v; want group 0 and 3", head.StateGroup, len(head.State), err)
			}
		})
	}
}
