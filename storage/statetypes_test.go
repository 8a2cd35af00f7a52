package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestStateOfTypes reads chosen state types of several rooms on both
// engines: only current state of those types and rooms comes back, with
// its content.
func TestStateOfTypes(t *testing.T) {
	runStreamCases(t, []streamCase{{"state of types", confStateOfTypes}})
}

func confStateOfTypes(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	cases := []struct {
		name         string
		rooms, types []string
		want         []string
	}{
		{"create of both rooms", []string{"!a:x", "!b:x"}, []string{"m.room.create"}, []string{"!a:x m.room.create ", "!b:x m.room.create "}},
		{"members of one room", []string{"!b:x"}, []string{"m.room.member"}, []string{"!b:x m.room.member @q:x"}},
		{"current members only", []string{"!a:x"}, []string{"m.room.member", "m.room.name"},
			[]string{"!a:x m.room.member @i:x", "!a:x m.room.member @l:x", "!a:x m.room.member @p:x", "!a:x m.room.member @v:x"}},
		{"an absent type", []string{"!a:x", "!b:x"}, []string{"m.room.encryption"}, nil},
		{"no rooms", nil, []string{"m.room.create"}, nil},
		{"no types", []string{"!a:x"}, nil, nil},
	}
	for _, c := range cases {
		got, err := s.StateOfTypes(ctx, c.rooms, c.types)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range got {
			if len(e.Client) == 0 {
				t.Errorf("%s: %s %s has no content", c.name, e.RoomID, e.Type)
			}
			keys = append(keys, fmt.Sprintf("%s %s %s", e.RoomID, e.Type, e.StateKeyOr()))
		}
		slices.Sort(keys)
		if !slices.Equal(keys, c.want) {
			t.Errorf("%s: %q, want %q", c.name, keys, c.want)
		}
	}
}
