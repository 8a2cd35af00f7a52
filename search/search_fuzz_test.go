package search

import (
	"errors"
	"testing"
)

// FuzzPrepare: any term, key, next_batch and limits are checked without
// panic; a refusal wraps ErrInvalidParam, and an accepted request becomes
// an index query within the limits.
func FuzzPrepare(f *testing.F) {
	f.Add("北京 hello", "content.body", "p12", 5, true)
	f.Add("", "content.name", "r3", -1, false)
	f.Add("x", "content.x", "q", 0, true)
	f.Fuzz(func(t *testing.T, term, key, next string, limit int, byRank bool) {
		q, _, err := (&Service{}).prepare(Request{Term: term, Keys: []string{key}, NextBatch: next, Limit: limit, ByRank: byRank})
		if err != nil {
			if !errors.Is(err, ErrInvalidParam) {
				t.Fatalf("prepare(%q, %q, %q, %d) = %v, want ErrInvalidParam", term, key, next, limit, err)
			}
			return
		}
		if q.Limit <= 0 || q.Limit > MaxLimit || q.Offset < 0 || q.Before < 0 || len(q.Tokens) > 64 {
			t.Fatalf("prepare(%q, %q, %q, %d) = %+v, out of bounds", term, key, next, limit, q)
		}
	})
}
