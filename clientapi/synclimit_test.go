package clientapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/ratelimit"
)

// TestAdmitFullSync: the per-user bucket refuses with 429 beyond its burst
// (exempt users skip it), and past MaxConcurrentFullSyncs a full sync waits
// for a slot, or gives up with its client.
func TestAdmitFullSync(t *testing.T) {
	a := New(Config{FullSyncLimiter: ratelimit.New(0.001, 2), MaxConcurrentFullSyncs: 1, RateExempt: []string{"@bot:x"}}, Deps{})
	ctx := context.Background()

	release, err := a.admitFullSync(ctx, "@alice:x")
	if err != nil {
		t.Fatalf("first full sync: %v", err)
	}
	// The one slot is taken: the next waits until its context ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := a.admitFullSync(short, "@bob:x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("full sync with the slot taken = %v, want to wait until its context ends", err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := a.admitFullSync(ctx, "@bot:x")
		if err == nil {
			r()
		}
		got <- err
	}()
	release()
	if err := <-got; err != nil {
		t.Errorf("full sync after a release = %v, want admitted", err)
	}

	// Alice used one of her two tokens; the second passes, the third is refused.
	r, err := a.admitFullSync(ctx, "@alice:x")
	if err != nil {
		t.Fatalf("second full sync: %v", err)
	}
	r()
	_, err = a.admitFullSync(ctx, "@alice:x")
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Status != 429 || ae.Code != "M_LIMIT_EXCEEDED" || ae.RetryAfterMs <= 0 {
		t.Errorf("third full sync = %v, want 429 M_LIMIT_EXCEEDED with retry_after_ms", err)
	}
	for i := range 5 { // the exempt bot is never limited per user
		r, err := a.admitFullSync(ctx, "@bot:x")
		if err != nil {
			t.Fatalf("exempt full sync %d: %v", i, err)
		}
		r()
	}
}
