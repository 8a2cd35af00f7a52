package admin

import (
	"errors"
	"testing"
)

func TestParsePage(t *testing.T) {
	cases := []struct {
		from, limit string
		want        Page
		err         error
	}{
		{"", "", Page{Limit: DefaultLimit}, nil},
		{"@a:b", "1", Page{From: "@a:b", Limit: 1}, nil},
		{"", "1000", Page{Limit: 1000}, nil},
		{"", "0", Page{}, ErrInvalidParam},
		{"", "1001", Page{}, ErrInvalidParam},
		{"", "-5", Page{}, ErrInvalidParam},
		{"", "1e3", Page{}, ErrInvalidParam},
		{"", "99999999999999999999", Page{}, ErrInvalidParam},
		{string(make([]byte, 513)), "", Page{}, ErrInvalidParam},
	}
	for _, c := range cases {
		got, err := ParsePage(c.from, c.limit)
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("ParsePage(%.20q, %q) = %+v, %v; want %+v, %v", c.from, c.limit, got, err, c.want, c.err)
		}
	}
}

// FuzzParsePage: any query gives a page within the limits or
// ErrInvalidParam, never a panic.
func FuzzParsePage(f *testing.F) {
	for _, s := range [][2]string{{"", ""}, {"@a:b", "10"}, {"x", "-1"}, {"", "1001"}, {"", " 5"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, from, limit string) {
		p, err := ParsePage(from, limit)
		if err != nil {
			if !errors.Is(err, ErrInvalidParam) {
				t.Fatalf("ParsePage(%q, %q) error %v is not ErrInvalidParam", from, limit, err)
			}
			return
		}
		if p.Limit < 1 || p.Limit > MaxLimit || p.From != from {
			t.Fatalf("ParsePage(%q, %q) = %+v, out of bounds", from, limit, p)
		}
	})
}
