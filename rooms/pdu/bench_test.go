package pdu

import (
	"testing"
)

func BenchmarkBuild(b *testing.B) {
	p, key := message(), testKey("example.org")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(p, "11", key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw := mustBuild(b, message(), "11").Raw
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw, "11"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	key := testKey("example.org")
	ev := mustBuild(b, message(), "11")
	pub := key.Public()
	b.ReportAllocs()
	for b.Loop() {
		if err := ev.VerifySignature("11", key.ServerName, key.KeyID, pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalJSON measures validating and re-encoding a signed event
// in canonical form: the step under every hash and signature.
func BenchmarkCanonicalJSON(b *testing.B) {
	raw := mustBuild(b, message(), "11").Raw
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := canonicalize(raw); err != nil {
			b.Fatal(err)
		}
	}
}
