package moments

import (
	"strings"
	"testing"
)

func seqs(ps []Post) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(" ")
		b.WriteString(string(rune('0' + p.Seq)))
	}
	return b.String()
}

func TestMergeNewest(t *testing.T) {
	mk := func(ss ...int64) []Post {
		var out []Post
		for _, s := range ss {
			out = append(out, Post{Seq: s})
		}
		return out
	}
	cases := []struct {
		a, b []Post
		n    int
		want string
	}{
		{mk(9, 5, 1), mk(8, 2), 10, " 9 8 5 2 1"},
		{mk(9, 5, 1), mk(8, 2), 3, " 9 8 5"},
		{nil, mk(3, 2), 5, " 3 2"},
		{mk(4), nil, 5, " 4"},
		{nil, nil, 5, ""},
	}
	for _, c := range cases {
		if got := seqs(mergeNewest(c.a, c.b, c.n)); got != c.want {
			t.Errorf("mergeNewest(%s,%s,%d) = %q, want %q", seqs(c.a), seqs(c.b), c.n, got, c.want)
		}
	}
}

func TestVisible(t *testing.T) {
	friends := friendSet{"@a:x": {}}
	cases := []struct {
		name   string
		p      Post
		viewer string
		want   bool
	}{
		{"own post", Post{Author: "@me:x", Visibility: Only, Users: []string{"@z:x"}}, "@me:x", true},
		{"friend, all", Post{Author: "@a:x", Visibility: AllFriends}, "@me:x", true},
		{"friend, only me", Post{Author: "@a:x", Visibility: Only, Users: []string{"@me:x"}}, "@me:x", true},
		{"friend, only others", Post{Author: "@a:x", Visibility: Only, Users: []string{"@z:x"}}, "@me:x", false},
		{"friend, except me", Post{Author: "@a:x", Visibility: Except, Users: []string{"@me:x"}}, "@me:x", false},
		{"friend, except others", Post{Author: "@a:x", Visibility: Except, Users: []string{"@z:x"}}, "@me:x", true},
		{"not a friend", Post{Author: "@b:x", Visibility: AllFriends}, "@me:x", false},
		{"not a friend, listed", Post{Author: "@b:x", Visibility: Only, Users: []string{"@me:x"}}, "@me:x", false},
	}
	for _, c := range cases {
		if got := visible(c.p, c.viewer, friends); got != c.want {
			t.Errorf("%s: visible = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"$mabc": true, "": false, "a b": false, "a/b": false, strings.Repeat("a", 256): false, "é": false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
