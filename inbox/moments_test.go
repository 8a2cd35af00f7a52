package inbox

import "testing"

// TestParseTokenMoments: the moments part ("m<pos>", after the channel
// part and before the epoch) parses and round-trips.
func TestParseTokenMoments(t *testing.T) {
	cases := []struct {
		in   string
		want Token
		ok   bool
	}{
		{"s10_3m7", Token{Pos: 10, Typing: 3, Moments: 7}, true},
		{"s10_3.5m7", Token{Pos: 10, Typing: 3, Chan: 5, Moments: 7}, true},
		{"s10_3_4.5m7~ab", Token{Pos: 10, Typing: 3, ToDevice: 4, Chan: 5, Moments: 7, Epoch: "ab"}, true},
		{"s10_3m1733390000000001", Token{Pos: 10, Typing: 3, Moments: 1733390000000001}, true},
		{"s10_3m", Token{}, false},
		{"s10_3m-1", Token{}, false},
		{"s10_3m7.5", Token{}, false},
		{"s10_3m7m8", Token{}, false},
	}
	for _, c := range cases {
		got, err := ParseToken(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if c.ok {
			if back, _ := ParseToken(got.String()); back != got {
				t.Errorf("round trip of %q = %+v", c.in, back)
			}
		}
	}
}

func FuzzParseTokenMoments(f *testing.F) {
	for _, s := range []string{"s1_0m3", "s1_0.2m3", "s1_0_1.2m3~ab", "s1_0m", "s1_0mm1", "t5m2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.Moments < 0 {
			t.Fatalf("ParseToken(%q) = %+v: negative moments part", s, tok)
		}
		if again, err := ParseToken(tok.String()); err != nil || again.Moments != tok.Moments || again.Chan != tok.Chan || again.Pos != tok.Pos {
			t.Fatalf("round trip %q -> %q -> %+v %v", s, tok.String(), again, err)
		}
	})
}

// TestMomentsFeedNews: a change concerns only the users named; a token
// from an earlier run counts as news; a token without a moments position
// (sliding sync's) never does, or its long-polls would spin.
func TestMomentsFeedNews(t *testing.T) {
	f := NewMomentsFeed(newTestNotifier(t))
	start := f.Pos()
	if !f.hasNews("@a:x", start-1) {
		t.Errorf("a token from an earlier run is not news")
	}
	f.Changed([]string{"@a:x"})
	if f.hasNews("@a:x", 0) {
		t.Errorf("a token without a moments position is news")
	}
	start = f.Pos()
	if f.hasNews("@a:x", start) {
		t.Errorf("news at the start position with no change")
	}
	f.Changed([]string{"@a:x"})
	if !f.hasNews("@a:x", start) || f.hasNews("@b:x", start) || f.hasNews("@a:x", f.Pos()) {
		t.Errorf("after a change for @a: a=%v b=%v a-now=%v; want true false false",
			f.hasNews("@a:x", start), f.hasNews("@b:x", start), f.hasNews("@a:x", f.Pos()))
	}
	if !f.hasNews("@b:x", f.Pos()+5) {
		t.Errorf("a token ahead of the feed is not news")
	}
}
