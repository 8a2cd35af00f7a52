package authrules

import (
	"testing"
)

func BenchmarkCheck(b *testing.B) {
	r := newRoom(b, "11")
	msg := r.build(r.proto(bob, "m.room.message", nil, `{"body":"hello"}`))
	msgAuth := r.authFor(msg)
	plc := r.build(r.proto(alice, "m.room.power_levels", new(string), `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":10}}`))
	plAuth := r.authFor(plc)
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Check("11", msg, msgAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("power_levels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Check("11", plc, plAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
}
