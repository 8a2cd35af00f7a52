package clientapi

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestParsePageToken(t *testing.T) {
	cases := []struct {
		in      string
		want    pageToken
		wantErr bool
	}{
		{"d5_12", pageToken{topo: true, point: storage.TopoPoint{Depth: 5, Pos: 12}}, false},
		{"d1_-3", pageToken{topo: true, point: storage.TopoPoint{Depth: 1, Pos: -3}}, false},                                     // backfilled history
		{"d0_-9223372036854775808", pageToken{topo: true, point: storage.TopoPoint{Depth: 0, Pos: -9223372036854775808}}, false}, // dir=f's start
		{"t42", pageToken{pos: 42}, false},                   // a sync's prev_batch
		{"s42_3", pageToken{pos: 42}, false},                 // a whole sync token
		{"s42_3~e0", pageToken{pos: 42, epoch: "e0"}, false}, // with its store epoch
		{"d5", pageToken{}, true},
		{"d-1_2", pageToken{}, true},
		{"dx_2", pageToken{}, true},
		{"x1", pageToken{}, true},
		{"", pageToken{}, true},
	}
	for _, c := range cases {
		got, err := parsePageToken(c.in)
		if (err != nil) != c.wantErr || (err == nil && got != c.want) {
			t.Errorf("parsePageToken(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
		}
		if err == nil && got.topo {
			if back, err := parsePageToken(topoToken(got.point)); err != nil || back != got {
				t.Errorf("round trip of %q = %+v, %v", c.in, back, err)
			}
		}
	}
}

func FuzzParsePageToken(f *testing.F) {
	for _, s := range []string{"d5_12", "d1_-3", "t42", "s42_3_1", "d_", "d9223372036854775807_-9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parsePageToken(s)
		if err != nil {
			return
		}
		if tok.topo {
			back, err := parsePageToken(topoToken(tok.point))
			if err != nil || back != tok {
				t.Fatalf("round trip of %q = %+v, %v; want %+v", s, back, err, tok)
			}
		}
	})
}
