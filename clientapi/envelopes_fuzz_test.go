package clientapi

import (
	"strconv"
	"testing"
)

// FuzzAmountParam: the amount parser never panics, and accepts exactly
// the decimal integer literals that fit in an int64.
func FuzzAmountParam(f *testing.F) {
	for _, s := range []string{"1", "0", "-5", "10.5", "1e3", "99999999999999999999", `"7"`, "null", "", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := amountParam("total", []byte(s))
		want, werr := strconv.ParseInt(s, 10, 64)
		if (err == nil) != (werr == nil) && s != "" && s != "null" {
			t.Fatalf("amountParam(%q) error %v, ParseInt error %v", s, err, werr)
		}
		if err == nil && n != want {
			t.Fatalf("amountParam(%q) = %d, want %d", s, n, want)
		}
	})
}
