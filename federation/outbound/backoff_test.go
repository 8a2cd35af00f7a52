package outbound

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const min, max = 2 * time.Second, time.Hour
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{1, 0.5, 2 * time.Second},
		{2, 0.5, 4 * time.Second},
		{3, 0.5, 8 * time.Second},
		{1, 0, time.Second}, // jitter's low end: half
		{1, 0.75, 2500 * time.Millisecond},
		{12, 0.5, max},   // 2 s << 11 > 1 h: capped
		{1000, 0.5, max}, // no overflow however many failures
		{1000, 0, max / 2},
	}
	for _, tt := range tests {
		got := backoff(tt.n, min, max, tt.jitter)
		if got != tt.want {
			t.Errorf("backoff(%d, jitter %v) = %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
}
