package envelopes

import (
	"math"
	"testing"
)

// split runs one whole envelope through Share.
func split(r *Rand, kind string, total int64, count int) []int64 {
	out := make([]int64, 0, count)
	rem := total
	for left := count; left > 0; left-- {
		s := Share(r, kind, rem, left)
		out = append(out, s)
		rem -= s
	}
	return out
}

// TestShareSumsAndBounds: every share is at least one unit and at most
// 2 × remaining / count (except the last, which takes the remainder), and
// the shares of an envelope always add up to its total.
func TestShareSumsAndBounds(t *testing.T) {
	r := NewRand(1)
	cases := []struct {
		total int64
		count int
	}{{1, 1}, {2, 2}, {3, 2}, {100, 100}, {101, 100}, {1000, 3}, {20000, 100}, {1 << 50, 1000}, {7, 5}}
	for _, kind := range []string{KindRandom, KindEqual} {
		for _, tc := range cases {
			for run := 0; run < 200; run++ {
				rem := tc.total
				var sum int64
				for left := tc.count; left > 0; left-- {
					s := Share(r, kind, rem, left)
					if s < 1 {
						t.Fatalf("%s %d/%d: share %d, want >= 1", kind, tc.total, tc.count, s)
					}
					if left > 1 && kind == KindRandom && s > 2*rem/int64(left) {
						t.Fatalf("%s %d/%d: share %d above 2×%d/%d", kind, tc.total, tc.count, s, rem, left)
					}
					if left > 1 && rem-s < int64(left-1) {
						t.Fatalf("%s %d/%d: share %d leaves %d for %d claims", kind, tc.total, tc.count, s, rem-s, left-1)
					}
					rem -= s
					sum += s
				}
				if sum != tc.total {
					t.Fatalf("%s %d/%d: shares sum to %d, want %d", kind, tc.total, tc.count, sum, tc.total)
				}
			}
		}
	}
}

// TestShareDistribution: for random envelopes, the mean share at every
// position is the fair share total/count (within 4 standard errors over
// 20,000 envelopes), so claiming early or late gives the same expectation,
// and the first share is uniform over [1, 2×total/count].
func TestShareDistribution(t *testing.T) {
	const runs, total, count = 20000, 10000, 10
	r := NewRand(42)
	var sum, sumSq [count]float64
	var firstHist [2*total/count + 1]int
	for i := 0; i < runs; i++ {
		for pos, s := range split(r, KindRandom, total, count) {
			sum[pos] += float64(s)
			sumSq[pos] += float64(s) * float64(s)
			if pos == 0 {
				firstHist[s]++
			}
		}
	}
	fair := float64(total) / count
	for pos := 0; pos < count; pos++ {
		mean := sum[pos] / runs
		sd := math.Sqrt(sumSq[pos]/runs - mean*mean)
		if se := sd / math.Sqrt(runs); math.Abs(mean-fair) > 4*se+1 {
			t.Errorf("position %d: mean %.1f, want %.1f ± %.1f", pos, mean, fair, 4*se)
		}
	}
	// Uniform first share: each half of the range holds half the draws.
	low := 0
	for v := 1; v <= total/count; v++ {
		low += firstHist[v]
	}
	if frac := float64(low) / runs; math.Abs(frac-0.5) > 0.02 {
		t.Errorf("first share in the lower half %.3f of the time, want 0.5 ± 0.02", frac)
	}
	if firstHist[0] != 0 {
		t.Errorf("a first share of 0 drawn %d times", firstHist[0])
	}
}

// TestShareSeeded: a seeded generator replays the same split.
func TestShareSeeded(t *testing.T) {
	a, b := split(NewRand(7), KindRandom, 5000, 20), split(NewRand(7), KindRandom, 5000, 20)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("share %d: %d then %d with the same seed", i, a[i], b[i])
		}
	}
}

func BenchmarkShare(b *testing.B) {
	b.ReportAllocs()
	r := NewRand(1)
	for i := 0; i < b.N; i++ {
		Share(r, KindRandom, 20000, 100)
	}
}
