package outbound

import "time"

// backoff returns how long to wait after the n-th consecutive failure
// (n >= 1): min doubled per failure, capped at max, then scaled by a jitter
// factor in [0.5, 1.5) from r (a number in [0, 1)). Jitter spreads the
// retries of many servers that lost the same destination at once, so they
// do not hit it together when it comes back.
func backoff(n int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = minDur(d, max)
	return time.Duration(float64(d) * (0.5 + r))
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
