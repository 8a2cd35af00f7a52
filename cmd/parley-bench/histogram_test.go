package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketIndexRoundTrips(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 123456789, 1<<63 - 1, math.MaxUint64} {
		i := bucketIndex(v)
		if i < 0 || i >= bucketCount {
			t.Fatalf("bucketIndex(%d) = %d, outside [0, %d)", v, i, bucketCount)
		}
		low, width := bucketRange(i)
		if v < low || v-low >= width {
			t.Errorf("bucketIndex(%d) = %d with range [%d, %d+%d), want v inside", v, i, low, low, width)
		}
		if v >= subBucketCount && float64(width)/float64(v) > 1.0/subBucketCount {
			t.Errorf("bucket of %d is %d wide, want under %.2f%% of the value", v, width, 100.0/subBucketCount)
		}
	}
}

func TestBucketIndexIsMonotonic(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<16; v++ {
		i := bucketIndex(v)
		if i < prev || i > prev+1 {
			t.Fatalf("bucketIndex(%d) = %d after %d, want the same or the next bucket", v, i, prev)
		}
		prev = i
	}
}

func TestHistogramQuantiles(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		want    summary
	}{
		{"empty", nil, summary{}},
		{"one", []time.Duration{5 * ms}, summary{Count: 1, Min: 5, Mean: 5, P50: 5, P90: 5, P99: 5, P999: 5, Max: 5}},
		{"negative counts as zero", []time.Duration{-ms}, summary{Count: 1}},
		{"two", []time.Duration{ms, 3 * ms}, summary{Count: 2, Min: 1, Mean: 2, P50: 1, P90: 3, P99: 3, P999: 3, Max: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistogram()
			for _, s := range tt.samples {
				h.record(s)
			}
			if got := h.summary(); !closeSummary(got, tt.want, 0.01) {
				t.Errorf("summary of %v = %+v, want %+v", tt.samples, got, tt.want)
			}
		})
	}
}

// TestHistogramMatchesExactQuantiles compares against sorting: every
// quantile must be within the histogram's 0.8% resolution.
func TestHistogramMatchesExactQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newHistogram()
	var exact []time.Duration
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(5*time.Millisecond)) // a long-tailed latency
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := exact[max(int(math.Ceil(q*float64(len(exact))))-1, 0)]
		got := h.quantileLocked(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/subBucketCount {
			t.Errorf("quantile(%v) = %v, want %v (error %.3f%%)", q, got, want, rel*100)
		}
	}
}

func closeSummary(a, b summary, tol float64) bool {
	if a.Count != b.Count {
		return false
	}
	pairs := [][2]float64{{a.Min, b.Min}, {a.Mean, b.Mean}, {a.P50, b.P50}, {a.P90, b.P90}, {a.P99, b.P99}, {a.P999, b.P999}, {a.Max, b.Max}}
	for _, p := range pairs {
		if math.Abs(p[0]-p[1]) > tol*math.Max(1, math.Abs(p[1])) {
			return false
		}
	}
	return true
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := newHistogram()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
}
