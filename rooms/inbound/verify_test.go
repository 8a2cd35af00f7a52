package inbound_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// TestVerifyAllMatchesOneByOne: the parallel check 2 gives, for every event
// and in order, what VerifySignatures gives for it alone, including the
// failures (a forged signature among valid ones), for sizes on both sides
// of the parallel threshold.
func TestVerifyAllMatchesOneByOne(t *testing.T) {
	fx := newFixture(t, "11")
	keys := remotetestKeys()
	for _, n := range []int{0, 1, 7, 8, 100, 333} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			evs := make([]*pdu.Event, n)
			raws := make([][]byte, n)
			for i := range evs {
				ev := fx.base.Clone().BuildMessage(bob, fmt.Sprint("message ", i))
				if i%50 == 3 {
					// The signature of another event: the hash still
					// matches, the signature does not.
					other := fx.base.Clone().BuildMessage(bob, "another")
					path := "signatures.remote\\.example"
					raw, err := sjson.SetRawBytes(ev.Raw, path, []byte(gjson.GetBytes(other.Raw, path).Raw))
					if err != nil {
						t.Fatal(err)
					}
					if ev, err = pdu.Parse(raw, "11"); err != nil {
						t.Fatal(err)
					}
				}
				evs[i], raws[i] = ev, ev.Raw
			}
			parsed, perrs := inbound.ParseAll(raws, "11")
			got := inbound.VerifyAll(context.Background(), keys, "11", evs)
			if len(got) != n || len(parsed) != n || len(perrs) != n {
				t.Fatalf("got %d verdicts, %d parsed, %d parse errors, want %d each", len(got), len(parsed), len(perrs), n)
			}
			for i, ev := range evs {
				want := inbound.VerifySignatures(context.Background(), keys, "11", ev)
				if (i%50 == 3) != (want != nil) {
					t.Fatalf("event %d: VerifySignatures = %v; the fixture is wrong", i, want)
				}
				if (got[i] == nil) != (want == nil) || (want != nil && !errors.Is(got[i], inbound.ErrDropped)) {
					t.Errorf("event %d: VerifyAll = %v, want %v", i, got[i], want)
				}
				if perrs[i] != nil || parsed[i].ID != ev.ID {
					t.Errorf("event %d: ParseAll = %v, %v, want event %s", i, parsed[i], perrs[i], ev.ID)
				}
			}
		})
	}
}

// BenchmarkVerifyAll is check 2 over a send_join answer's worth of events
// (200), spread over the cores; compare with -cpu 1.
func BenchmarkVerifyAll(b *testing.B) {
	fx := newFixture(b, "11")
	keys := remotetestKeys()
	evs := make([]*pdu.Event, 200)
	for i := range evs {
		evs[i] = fx.base.Clone().BuildMessage(bob, fmt.Sprint("message ", i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for _, err := range inbound.VerifyAll(ctx, keys, "11", evs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
