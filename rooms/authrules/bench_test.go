package authrules

import (
	"testing"
)

func BenchmarkCheck(b *testing.B) {
	benchCheck(b, "11", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":10}}`)
}

// BenchmarkCheckV12 is BenchmarkCheck in a version 12 room, where the
// creators' unlimited power adds a look at the create event.
func BenchmarkCheckV12(b *testing.B) {
	benchCheck(b, "12", `{"users":{"@mod:example.org":50,"@bob:example.org":10}}`)
}

func benchCheck(b *testing.B, version, plContent string) {
	r := newRoom(b, version)
	msg := r.build(r.proto(bob, "m.room.message", nil, `{"body":"hello"}`))
	msgAuth := r.authFor(msg)
	plc := r.build(r.proto(alice, "m.room.power_levels", new(string), plContent))
	plAuth := r.authFor(plc)
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Check(version, msg, msgAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("power_levels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Check(version, plc, plAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
}
