package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrLimited: an action was refused for rate; nothing changed. Errors
// carrying it are *Error, which says when to retry; the HTTP layer answers
// 429 M_LIMIT_EXCEEDED with retry_after_ms.
var ErrLimited = errors.New("rate limited")

// Error is a refusal for rate of one kind of action (What, e.g. "channel
// posts"); RetryAfter is when one more is allowed.
type Error struct {
	What       string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("too many %s: retry after %v", e.What, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrLimited) hold.
func (e *Error) Unwrap() error { return ErrLimited }

// PerMinute is a limiter of n actions a minute per key, n of them at once:
// the form the per-feature limits in configuration take.
func PerMinute(n int) *Limiter { return New(float64(n)/60, n) }

// Take is Allow for an action: nil, or the *Error refusing it.
func (l *Limiter) Take(what, key string, now time.Time) error {
	if ok, wait := l.Allow(key, now); !ok {
		return &Error{What: what, RetryAfter: wait}
	}
	return nil
}
