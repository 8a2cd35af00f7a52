package ratelimit

import (
	"testing"
	"time"
)

func TestRefund(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(1, 2)
	for i := range 2 {
		if ok, _ := l.Allow("k", now); !ok {
			t.Fatalf("Allow %d = false, want true (burst 2)", i)
		}
	}
	if ok, _ := l.Allow("k", now); ok {
		t.Fatal("Allow after the burst = true, want false")
	}
	l.Refund("k", now)
	if ok, _ := l.Allow("k", now); !ok {
		t.Error("Allow after a refund = false, want true")
	}
	// Refunds never push a bucket past full.
	for range 5 {
		l.Refund("k", now)
	}
	if got := l.Len(); got != 0 {
		t.Errorf("Len after refunding everything = %d, want 0 (full buckets are dropped)", got)
	}
	for i := range 2 {
		if ok, _ := l.Allow("k", now); !ok {
			t.Fatalf("Allow %d after refunds = false, want true", i)
		}
	}
	if ok, _ := l.Allow("k", now); ok {
		t.Error("third Allow after refunds = true, want false: a refund must not raise the burst")
	}
	l.Refund("unknown", now) // no bucket: nothing to do, no panic
	var nilL *Limiter
	nilL.Refund("k", now)
}
