package main

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// The histogram keeps 2^subBucketBits buckets per power of two, like
// HdrHistogram with two significant decimal digits: any recorded value is
// reported within 1/2^subBucketBits (0.8%) of itself, from 1 ns to hours,
// in a fixed 58 KiB whatever the number of samples. Written by hand because
// no histogram library is in the module graph and it is 100 lines.
const (
	subBucketBits  = 7
	subBucketCount = 1 << subBucketBits
	bucketCount    = (64 - subBucketBits + 1) * subBucketCount
)

// histogram records durations. It is safe for concurrent use: pollers and
// senders record into one histogram.
type histogram struct {
	mu     sync.Mutex
	counts [bucketCount]int64 // guarded by mu
	total  int64              // guarded by mu
	sum    float64            // guarded by mu, in ns
	min    int64              // guarded by mu
	max    int64              // guarded by mu
}

func newHistogram() *histogram { return &histogram{min: math.MaxInt64} }

// bucketIndex maps v to its bucket. Values below subBucketCount have a
// bucket each; above, each power of two [2^k, 2^(k+1)) is cut into
// subBucketCount equal buckets.
func bucketIndex(v uint64) int {
	if v < subBucketCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBucketBits - 1
	return (shift+1)*subBucketCount + int(v>>shift) - subBucketCount
}

// bucketRange is the smallest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < subBucketCount {
		return uint64(i), 1
	}
	shift := i/subBucketCount - 1
	return uint64(i%subBucketCount+subBucketCount) << shift, 1 << shift
}

// record adds one duration; negative ones (clock steps) count as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[bucketIndex(uint64(v))]++
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

func (h *histogram) count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// quantileLocked is the value below or at which a fraction q of the samples
// lie: the middle of the bucket holding that rank, kept within the exact
// minimum and maximum.
func (h *histogram) quantileLocked(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := max(int64(math.Ceil(q*float64(h.total))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			mid := int64(low + (width-1)/2)
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// summary is a histogram's report form, in milliseconds.
type summary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *histogram) summary() summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total == 0 {
		return summary{}
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return summary{
		Count: h.total,
		Min:   ms(time.Duration(h.min)),
		Mean:  ms(time.Duration(h.sum / float64(h.total))),
		P50:   ms(h.quantileLocked(0.50)),
		P90:   ms(h.quantileLocked(0.90)),
		P99:   ms(h.quantileLocked(0.99)),
		P999:  ms(h.quantileLocked(0.999)),
		Max:   ms(time.Duration(h.max)),
	}
}
