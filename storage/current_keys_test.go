package storage_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/storage"
)

// TestCurrentStateKeys reads a room's current state under chosen keys on
// both engines: held keys come back, absent ones do not, another room's
// rows never do, and more keys than one query takes still work.
func TestCurrentStateKeys(t *testing.T) {
	runStreamCases(t, []streamCase{{"keyed current state", confCurrentStateKeys}})
}

func confCurrentStateKeys(t *testing.T, ctx context.Context, s *storage.Store) {
	var changes []dag.CurrentChange
	for i := range 60 {
		changes = append(changes, dag.CurrentChange{Type: "m.room.member", StateKey: fmt.Sprintf("@u%d:x", i), EventID: fmt.Sprintf("$m%d", i), Membership: "join", Sender: "@a:x"})
	}
	changes = append(changes, dag.CurrentChange{Type: "m.room.create", EventID: "$create", Sender: "@a:x"})
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, room := range []string{"!a:x", "!b:x"} {
			if err := tx.InsertRoom(ctx, storage.Room{RoomID: room, Version: "11", Creator: "@a:x", CreatedTS: 1}); err != nil {
				return err
			}
		}
		if err := tx.ApplyCurrentState(ctx, "!a:x", 1, changes); err != nil {
			return err
		}
		return tx.ApplyCurrentState(ctx, "!b:x", 2, []dag.CurrentChange{{Type: "m.room.topic", EventID: "$other", Sender: "@a:x"}})
	})
	keys := []dag.StateTuple{{Type: "m.room.create"}, {Type: "m.room.topic"}, {Type: "m.room.member", StateKey: "@nobody:x"}}
	want := dag.StateMap{{Type: "m.room.create"}: "$create"}
	for i := range 60 {
		k := dag.StateTuple{Type: "m.room.member", StateKey: fmt.Sprintf("@u%d:x", i)}
		keys = append(keys, k)
		want[k] = fmt.Sprintf("$m%d", i)
	}
	got, err := s.CurrentStateKeys(ctx, "!a:x", keys)
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("CurrentStateKeys = %v, %v; want %v", got, err, want)
	}
	if got, err := s.CurrentStateKeys(ctx, "!a:x", keys[:2]); err != nil || !maps.Equal(got, dag.StateMap{{Type: "m.room.create"}: "$create"}) {
		t.Errorf("CurrentStateKeys(create, topic) = %v, %v; want the create event only", got, err)
	}
	if got, err := s.CurrentStateKeys(ctx, "!a:x", nil); err != nil || len(got) != 0 {
		t.Errorf("CurrentStateKeys(no keys) = %v, %v; want nothing", got, err)
	}
}
