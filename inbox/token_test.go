package inbox

import (
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	cases := []struct {
		in   string
		want Token
		ok   bool
	}{
		{"s10_3", Token{Pos: 10, Typing: 3}, true},
		{"s10_3_7", Token{Pos: 10, Typing: 3, ToDevice: 7}, true},
		{"t42", Token{Pos: 42}, true},
		{"s", Token{}, false},
		{"x10_3", Token{}, false},
		{"s-1_0", Token{}, false},
		{"s10_x", Token{}, false},
		{"s99999999999999999999_0", Token{}, false},
		{"s10_3~a1b2c3d4e5f6", Token{Pos: 10, Typing: 3, Epoch: "a1b2c3d4e5f6"}, true},
		{"s10_3_7~ab", Token{Pos: 10, Typing: 3, ToDevice: 7, Epoch: "ab"}, true},
		{"s10_3~", Token{}, false},
		{"s10_3~a-b", Token{}, false},
		{"s10_3~ab~cd", Token{}, false},
		{"s10_3~" + strings.Repeat("a", 33), Token{}, false},
		{"s10_3.5", Token{Pos: 10, Typing: 3, Chan: 5}, true},
		{"s10_3_7.5", Token{Pos: 10, Typing: 3, ToDevice: 7, Chan: 5}, true},
		{"s10_3.", Token{}, false},
		{"s10_3.-1", Token{}, false},
		{"s10_3.x", Token{}, false},
		{"s10_3.5~ab", Token{Pos: 10, Typing: 3, Chan: 5, Epoch: "ab"}, true},
	}
	for _, c := range cases {
		got, err := ParseToken(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && c.in[0] == 's' {
			if back, _ := ParseToken(got.String()); back != got {
				t.Errorf("round trip of %q = %+v", c.in, back)
			}
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s1_0", "s10_3_7", "t5", "", "s_", "s1__", "s1_0~ab12", "s1_0_1~", "s1_0.3", "s1_0_0.0", "s1_0.3~ab12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.Pos < 0 || tok.Typing < 0 || tok.ToDevice < 0 || tok.Chan < 0 {
			t.Fatalf("ParseToken(%q) = %+v: negative field", s, tok)
		}
		if again, err := ParseToken(tok.String()); err != nil || again.Pos != tok.Pos || again.Typing != tok.Typing || again.Epoch != tok.Epoch || again.Chan != tok.Chan {
			t.Fatalf("round trip %q -> %q -> %+v %v", s, tok.String(), again, err)
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`{}`, `{"room":{"timeline":{"limit":5,"types":["m.*"]}}}`, `{"room":{"rooms":[]}}`, `[]`, `{"room":{"timeline":{"limit":-1}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt, err := ParseFilter(raw)
		if err != nil {
			return
		}
		if flt.Room.Timeline.Limit < 0 || flt.Room.Timeline.Limit > MaxTimelineLimit {
			t.Fatalf("limit %d escaped the bounds", flt.Room.Timeline.Limit)
		}
		flt.Room.Timeline.Allows("m.room.message", "@a:b")
		flt.Room.AllowsRoom("!r:b")
	})
}

func TestMatchType(t *testing.T) {
	cases := []struct {
		pattern, typ string
		want         bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.*", "m.room.message", true},
		{"m.room.*", "m.reaction", false},
		{"*.message", "m.room.message", true},
		{"m.*.name", "m.room.name", true},
		{"m.*.name", "m.room.topic", false},
	}
	for _, c := range cases {
		if got := matchType(c.pattern, c.typ); got != c.want {
			t.Errorf("matchType(%q, %q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
}
