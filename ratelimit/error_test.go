package ratelimit

import (
	"errors"
	"testing"
	"time"
)

// TestTakeRefusesWithError: Take spends a token like Allow and refuses
// with an *Error that says what and when, and that errors.Is ErrLimited.
func TestTakeRefusesWithError(t *testing.T) {
	l := New(1, 1)
	now := time.Unix(1000, 0)
	if err := l.Take("posts", "k", now); err != nil {
		t.Fatalf("first Take = %v, want nil", err)
	}
	err := l.Take("posts", "k", now)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrLimited) || e.What != "posts" || e.RetryAfter != time.Second {
		t.Fatalf("second Take = %v, want *Error for posts, retry after 1s, wrapping ErrLimited", err)
	}
	if err := l.Take("posts", "other", now); err != nil {
		t.Errorf("another key's Take = %v, want nil", err)
	}
	if err := (*Limiter)(nil).Take("posts", "k", now); err != nil {
		t.Errorf("nil limiter's Take = %v, want nil", err)
	}
}

// TestPerMinute: n a minute means n at once, then one every 60/n seconds.
func TestPerMinute(t *testing.T) {
	l := PerMinute(2)
	now := time.Unix(1000, 0)
	for i := range 2 {
		if err := l.Take("posts", "k", now); err != nil {
			t.Fatalf("take %d = %v, want nil", i, err)
		}
	}
	var e *Error
	if err := l.Take("posts", "k", now); !errors.As(err, &e) || e.RetryAfter != 30*time.Second {
		t.Fatalf("third take = %v, want a refusal with 30s to wait", err)
	}
}
