package storetext

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	cases := []struct {
		in   string
		want bool // storable
	}{
		{`{"a":"b"}`, true},
		{`{"a":"\u0000"}`, false},
		{`{"\u0000":1}`, false},
		{`{"a":"\\u0000"}`, true},   // an escaped backslash, then text
		{`{"a":"\\\u0000"}`, false}, // an escaped backslash, then U+0000
		{`{"a":"\u00001"}`, false},
		{"{\"a\":\"\xff\"}", false},
		{`["\u0001"]`, true},
	}
	for _, c := range cases {
		err := CheckJSON([]byte(c.in))
		if (err == nil) != c.want {
			t.Errorf("CheckJSON(%s) = %v, want storable=%v", c.in, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrUnstorable) {
			t.Errorf("CheckJSON(%s) = %v, which is not ErrUnstorable", c.in, err)
		}
	}
}

// FuzzCheckJSON: CheckJSON refuses a valid JSON text exactly when it has
// invalid UTF-8 or a string or key that decodes to one holding U+0000.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, `"\\u0000"`, `["\\\\\u0000"]`, `{"\u0000x":null}`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		err := CheckJSON(b)
		// Every string and key, duplicates included, as encoding/json reads it.
		hasNUL := false
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
				hasNUL = true
			}
		}
		if hasNUL && err == nil {
			t.Fatalf("CheckJSON(%q) = nil, but it decodes to U+0000", b)
		}
		if !hasNUL && err != nil && Check(string(b)) == nil {
			t.Fatalf("CheckJSON(%q) = %v, but it decodes without U+0000", b, err)
		}
	})
}

// BenchmarkCheck: the per-argument cost the store's driver adds to every
// statement, for a typical ID.
func BenchmarkCheck(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Check("!a1b2c3d4e5f6g7h8i9:example.org") != nil {
			b.Fatal("refused")
		}
	}
}

// BenchmarkCheckJSON: the cost readJSON adds to a 2 KB request body.
func BenchmarkCheckJSON(b *testing.B) {
	body := []byte(`{"msgtype":"m.text","body":"` + strings.Repeat("héllo wörld ", 170) + `"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if CheckJSON(body) != nil {
			b.Fatal("refused")
		}
	}
}
