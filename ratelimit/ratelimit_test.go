package ratelimit

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus d, so tables can speak in offsets.
func at(d time.Duration) time.Time { return t0.Add(d) }

func TestAllowSequence(t *testing.T) {
	type step struct {
		at        time.Duration
		key       string
		wantOK    bool
		wantRetry time.Duration
	}
	tests := []struct {
		name      string
		perSecond float64
		burst     int
		steps     []step
	}{
		{
			name: "burst then refuse then refill one", perSecond: 2, burst: 3,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", false, 500 * time.Millisecond},
				{100 * time.Millisecond, "a", false, 400 * time.Millisecond},
				{500 * time.Millisecond, "a", true, 0},
				{500 * time.Millisecond, "a", false, 500 * time.Millisecond},
			},
		},
		{
			name: "refused calls take nothing", perSecond: 1, burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", false, time.Second},
				{0, "a", false, time.Second},
				{999 * time.Millisecond, "a", false, time.Millisecond},
				{time.Second, "a", true, 0},
			},
		},
		{
			name: "long idle refills to burst and no further", perSecond: 10, burst: 2,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", false, 100 * time.Millisecond},
				{time.Hour, "a", true, 0},
				{time.Hour, "a", true, 0},
				{time.Hour, "a", false, 100 * time.Millisecond},
			},
		},
		{
			name: "keys are independent", perSecond: 1, burst: 1,
			steps: []step{
				{0, "@alice:example.org", true, 0},
				{0, "@alice:example.org", false, time.Second},
				{0, "@bob:example.org", true, 0},
				{0, "@bob:example.org", false, time.Second},
				{0, "192.0.2.1", true, 0},
			},
		},
		{
			name: "burst below one means one", perSecond: 1, burst: 0,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", false, time.Second},
			},
		},
		{
			name: "unlimited", perSecond: 0, burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", true, 0},
			},
		},
		{
			name: "fractional rate", perSecond: 0.5, burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{time.Second, "a", false, time.Second},
				{2 * time.Second, "a", true, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.perSecond, tt.burst)
			for i, s := range tt.steps {
				ok, retry := l.Allow(s.key, at(s.at))
				if ok != s.wantOK || retry != s.wantRetry {
					t.Fatalf("step %d: Allow(%q, t0+%v) = %v, %v; want %v, %v",
						i, s.key, s.at, ok, retry, s.wantOK, s.wantRetry)
				}
			}
		})
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	if ok, retry := l.Allow("a", t0); !ok || retry != 0 {
		t.Errorf("nil Allow = %v, %v; want true, 0", ok, retry)
	}
	if got := l.Sweep(t0); got != 0 {
		t.Errorf("nil Sweep = %d; want 0", got)
	}
}

func TestNewEdgeRates(t *testing.T) {
	tests := []struct {
		name          string
		perSecond     float64
		burst         int
		wantUnlimited bool
	}{
		{"negative", -1, 10, true},
		{"NaN", math.NaN(), 10, true},
		{"faster than a nanosecond", 1e12, 10, true},
		{"very slow", 1e-30, 10, false},
		{"huge burst", 1e-30, int(^uint(0) >> 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.perSecond, tt.burst)
			if l.unlimited != tt.wantUnlimited {
				t.Fatalf("unlimited = %v; want %v", l.unlimited, tt.wantUnlimited)
			}
			if tt.wantUnlimited {
				return
			}
			// The first call always passes and the window must not overflow.
			if ok, _ := l.Allow("a", t0); !ok {
				t.Fatalf("first Allow refused")
			}
			if l.window <= 0 || l.interval <= 0 {
				t.Fatalf("interval, window = %v, %v; want both positive", l.interval, l.window)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	l := New(1, 2) // a drained bucket is full again after 2s
	l.Allow("drained", t0)
	l.Allow("drained", t0)
	l.Allow("half", t0)
	l.Allow("late", at(1500*time.Millisecond))

	steps := []struct {
		at          time.Duration
		wantDropped int
		wantLen     int
	}{
		{0, 0, 3},
		{999 * time.Millisecond, 0, 3},
		{time.Second, 1, 2},             // "half" is full again
		{2 * time.Second, 1, 1},         // "drained" too
		{2499 * time.Millisecond, 0, 1}, // "late" refills at 2.5s
		{2500 * time.Millisecond, 1, 0},
	}
	for _, s := range steps {
		if got := l.Sweep(at(s.at)); got != s.wantDropped {
			t.Errorf("Sweep(t0+%v) = %d; want %d", s.at, got, s.wantDropped)
		}
		if got := l.Len(); got != s.wantLen {
			t.Errorf("after Sweep(t0+%v): Len() = %d; want %d", s.at, got, s.wantLen)
		}
	}

	// A swept key starts again with a full bucket.
	for i := range 2 {
		if ok, _ := l.Allow("drained", at(3*time.Second)); !ok {
			t.Fatalf("Allow %d after sweep refused", i)
		}
	}
}

// TestConcurrentExactBurst checks that under contention exactly burst calls
// pass at a frozen instant: no token is handed out twice.
func TestConcurrentExactBurst(t *testing.T) {
	const burst, workers, calls = 100, 8, 50
	l := New(1, burst)
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				for _, key := range []string{"shared", "other"} {
					if ok, _ := l.Allow(key, t0); ok && key == "shared" {
						passed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := passed.Load(); got != burst {
		t.Errorf("passed = %d; want %d", got, burst)
	}
}

func TestAllowDoesNotAllocateForKnownKey(t *testing.T) {
	l := New(1e6, 1e6)
	key := "@alice:example.org"
	l.Allow(key, t0)
	now := t0
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Microsecond)
		l.Allow(key, now)
	})
	if allocs != 0 {
		t.Errorf("Allow on a known key: %v allocs/op; want 0", allocs)
	}

	unlimited := New(0, 0)
	if allocs := testing.AllocsPerRun(1000, func() { unlimited.Allow(key, now) }); allocs != 0 {
		t.Errorf("unlimited Allow: %v allocs/op; want 0", allocs)
	}
}

func TestShardIsOneCacheLine(t *testing.T) {
	if got := unsafe.Sizeof(shard{}); got != 64 {
		t.Errorf("sizeof(shard) = %d; want 64", got)
	}
}

func BenchmarkAllow(b *testing.B) {
	b.Run("known key", func(b *testing.B) {
		b.ReportAllocs()
		l := New(1e9, 1e9)
		now := time.Now()
		for b.Loop() {
			l.Allow("@alice:example.org", now)
		}
	})
	b.Run("unlimited", func(b *testing.B) {
		b.ReportAllocs()
		l := New(0, 0)
		now := time.Now()
		for b.Loop() {
			l.Allow("@alice:example.org", now)
		}
	})
	b.Run("parallel 10k keys", func(b *testing.B) {
		b.ReportAllocs()
		l := New(1e9, 1e9)
		keys := make([]string, 10_000)
		for i := range keys {
			keys[i] = fmt.Sprintf("@user%d:example.org", i)
		}
		now := time.Now()
		for _, k := range keys {
			l.Allow(k, now)
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 7919
			for pb.Next() {
				l.Allow(keys[i%len(keys)], now)
				i++
			}
		})
	})
}
