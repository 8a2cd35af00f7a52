package storage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

// Conformance of the clipped state reads: member events as of a position,
// for a reader whose view of a room ends there (rooms.Access).
func TestConformanceClippedReads(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"member events at a position", confMemberEventsAt},
	})
}

func confMemberEventsAt(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	insertEvents(t, s, nil,
		memberEv(9, "!a:x", "@p:x", "leave"),
		memberEv(10, "!a:x", "@l:x", "join"),
	)
	cases := []struct {
		room  string
		users []string
		pos   int64
		want  []string
	}{
		{"!a:x", []string{"@p:x", "@l:x", "@q:x"}, 6, []string{"$e3", "$e6"}},
		{"!a:x", []string{"@p:x", "@l:x"}, 10, []string{"$e9", "$e10"}},
		{"!a:x", []string{"@p:x", "@l:x"}, 4, []string{"$e3"}}, // @l:x had no member event yet
		{"!a:x", []string{"@l:x"}, 8, []string{"$e6"}},
		{"!b:x", []string{"@p:x"}, 10, nil}, // never in !b:x
		{"!a:x", nil, 10, nil},
	}
	for _, c := range cases {
		got, err := s.MemberEventsAt(ctx, c.room, c.users, c.pos)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("MemberEventsAt(%s, %v, %d) = %v, want %v", c.room, c.users, c.pos, ids(got), c.want)
		}
	}
}
