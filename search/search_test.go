package search

import (
	"slices"
	"testing"
)

func TestTypeMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, typ string
		want         bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.*", "m.room.topic", true},
		{"*", "m.room.name", true},
		{"m.*.name", "m.room.name", true},
		{"m.*.name", "m.room.topic", false},
		{"m.room.messag", "m.room.message", false},
		{"*.topic", "m.room.topic", true},
		{"**", "x", true},
	} {
		if got := typeMatches(tc.pattern, tc.typ); got != tc.want {
			t.Errorf("typeMatches(%q, %q) = %v, want %v", tc.pattern, tc.typ, got, tc.want)
		}
	}
}

// TestPrepareTypes: keys and the filter's types and not_types choose among
// the indexed types.
func TestPrepareTypes(t *testing.T) {
	for _, tc := range []struct {
		keys, types, notTypes []string
		want                  []string
	}{
		{nil, nil, nil, []string{"m.room.message", "m.room.name", "m.room.topic"}},
		{[]string{"content.body"}, nil, nil, []string{"m.room.message"}},
		{nil, []string{"m.room.*"}, []string{"m.room.message"}, []string{"m.room.name", "m.room.topic"}},
		{[]string{"content.body"}, []string{"m.room.name"}, nil, []string{"-"}},
		{[]string{"content.name", "content.name"}, nil, nil, []string{"m.room.name"}},
	} {
		q, _, err := (&Service{}).prepare(Request{Term: "x", Keys: tc.keys, Types: tc.types, NotTypes: tc.notTypes})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Types, tc.want) {
			t.Errorf("keys %v types %v not_types %v: got %v, want %v", tc.keys, tc.types, tc.notTypes, q.Types, tc.want)
		}
	}
}
