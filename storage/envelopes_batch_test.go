package storage

import "testing"

// TestChunkRows: multi-row statements carry a power of two of rows, at
// most maxRowsPerInsert, and the chunks of n rows add up to n.
func TestChunkRows(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 37, 256, 257, 511, 512, 1000} {
		left, texts := n, map[int]bool{}
		for left > 0 {
			c := chunkRows(left)
			if c < 1 || c > left || c > maxRowsPerInsert || c&(c-1) != 0 {
				t.Fatalf("chunkRows(%d) = %d, want a power of two from 1 to min(%d, %d)", left, c, left, maxRowsPerInsert)
			}
			texts[c] = true
			left -= c
		}
		if len(texts) > 9 {
			t.Errorf("%d rows: %d statement sizes, want at most 9", n, len(texts))
		}
	}
	for _, n := range []int{1, 2, 3, 5, 9} {
		vals := make([]any, n)
		for i := range vals {
			vals[i] = i
		}
		got := padIn(vals)
		if len(got)&(len(got)-1) != 0 || len(got) < n || got[len(got)-1] != n-1 {
			t.Errorf("padIn(%d values) = %v, want a power of two long, ending with the last value", n, got)
		}
	}
}
