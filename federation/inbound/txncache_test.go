package inbound

import (
	"fmt"
	"testing"
	"time"
)

// TestTxnCacheBounds: the cache keeps at most max answers, drops answers
// past the TTL, and keeps a transaction in flight while under the bound.
func TestTxnCacheBounds(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := newTxnCache(3, time.Hour)
	for i := range 5 {
		e, first := c.start("o", fmt.Sprint(i), t0)
		if !first {
			t.Fatalf("start(%d) not first", i)
		}
		c.finish(e, []byte(fmt.Sprint(i)), t0)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := c.entries[txnKey{"o", fmt.Sprint(i)}]; ok != want {
			t.Errorf("answer %d kept = %v, want %v", i, ok, want)
		}
	}
	if e, first := c.start("o", "4", t0); first || string(e.body) != "4" {
		t.Errorf("start(4) again = first %v, body %q; want the kept answer", first, e.body)
	}
	// An hour and more later the old answers go, and a retry runs anew.
	later := t0.Add(time.Hour + time.Second)
	inflight, first := c.start("o", "new", later)
	if !first {
		t.Fatal("start(new) not first")
	}
	if len(c.entries) != 1 {
		t.Errorf("entries after the TTL = %d, want 1 (the one in flight)", len(c.entries))
	}
	if _, first := c.start("o", "2", later); !first {
		t.Errorf("start(2) after the TTL is not first, want it processed again")
	}
	// A second asker of a transaction in flight waits for it.
	if e, first := c.start("o", "new", later); first || e != inflight {
		t.Errorf("start(new) while in flight = first %v, want the same entry", first)
	}
	c.abandon("o", "new", inflight, fmt.Errorf("refused"))
	if _, first := c.start("o", "new", later); !first {
		t.Errorf("start(new) after abandon is not first, want it processed again")
	}
	if n := len(c.order) - c.head; n > 2*c.max+2 {
		t.Errorf("order holds %d keys, want it compacted", n)
	}
}

// TestTxnCacheStaysSmall: under a steady stream of transactions the cache
// and its insertion order stay near the bound.
func TestTxnCacheStaysSmall(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := newTxnCache(8, time.Hour)
	for i := range 10_000 {
		e, _ := c.start("o", fmt.Sprint(i), t0)
		c.finish(e, nil, t0)
	}
	if len(c.entries) > 8 || cap(c.order) > 64 {
		t.Errorf("after 10,000 transactions: %d entries, order capacity %d; want at most 8 and a small order", len(c.entries), cap(c.order))
	}
}
