package inbound_test

import (
	"context"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
)

// BenchmarkCheck is the inbound checks on a typical message event that
// extends the room's only extremity: parse, one signature, auth events,
// state before from one prev event, current state.
func BenchmarkCheck(b *testing.B) {
	fx := newFixture(b, "11")
	raw := fx.base.Clone().BuildMessage(bob, "a typical message, about this long, with nothing special in it").Raw
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		v, err := fx.p.Check(ctx, raw)
		if err != nil || v.Kind != inbound.Accepted {
			b.Fatalf("Check = %v, %v", v, err)
		}
	}
}

// BenchmarkCheckForked is Check on a message whose prev event is on a
// stale fork behind a power levels change, so check 5 loads the current
// state's auth events and runs the auth rules a second time.
func BenchmarkCheckForked(b *testing.B) {
	fx := newFixture(b, "11")
	stale := fx.base.Clone()
	fx.send(fx.base.SendState(alice, "m.room.power_levels", "", fx.powerLevels(map[string]int{mod: 50, "@dave:remote.example": 10})))
	raw := stale.BuildMessage(bob, "a typical message from a stale fork").Raw
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := fx.p.Check(ctx, raw)
		if err != nil || v.Kind != inbound.Accepted {
			b.Fatalf("Check = %v, %v", v, err)
		}
	}
}
