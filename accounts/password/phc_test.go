package password

import (
	"errors"
	"testing"
)

func TestParsePHC(t *testing.T) {
	const valid = "$argon2id$v=19$m=64,t=2,p=1$cGFybGV5LWludGVyb3Atc2FsdA$ZqZdAi6loMhtiMesehkzBsjCJhgbBuYNfs4TQ2MhPnY"
	p, err := parsePHC(valid)
	if err != nil {
		t.Fatalf("parsePHC(valid) error: %v", err)
	}
	if p.memoryKiB != 64 || p.time != 2 || p.threads != 1 || string(p.salt) != "parley-interop-salt" || len(p.key) != 32 {
		t.Errorf("parsePHC(valid) = m=%d t=%d p=%d salt=%q keylen=%d; want m=64 t=2 p=1 salt=%q keylen=32",
			p.memoryKiB, p.time, p.threads, p.salt, len(p.key), "parley-interop-salt")
	}
	if got := p.String(); got != valid {
		t.Errorf("String() = %q; want %q", got, valid)
	}
}

// FuzzParsePHC checks that the parser never panics, reports every failure as
// ErrMalformedHash, returns only parameters argon2.IDKey accepts within the
// package bounds, and accepts only canonical strings (it re-encodes exactly).
func FuzzParsePHC(f *testing.F) {
	for _, seed := range []string{
		"$argon2id$v=19$m=64,t=2,p=1$cGFybGV5LWludGVyb3Atc2FsdA$ZqZdAi6loMhtiMesehkzBsjCJhgbBuYNfs4TQ2MhPnY",
		"$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$yxo0u725ht/u+ArqyyL37VGxPOyFMvsz2eBUq2J6aH8",
		"$argon2id$v=19$m=64,t=1,p=2$MDEyMzQ1Njc4OWFiY2RlZg$SxSH0vf0Kcm8Cw6p+3YTBZ1n8PxIZCqdGtTcJEQOJAE",
		"$argon2id$v=19$m=4294967295,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$SxSH0vf0Kcm8Cw6p+3YTBZ1n8PxIZCqdGtTcJEQOJAE",
		"$argon2id$v=19$m=064,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$SxSH0vf0Kcm8Cw6p+3YTBZ1n8PxIZCqdGtTcJEQOJAE",
		"$argon2id$v=19$m=64,t=0,p=0$$",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA",
		"$2b$12$abcdefghijklmnopqrstuu",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("parsePHC(%q) error %v; want ErrMalformedHash", s, err)
			}
			return
		}
		if p.time < 1 || p.time > MaxTime || p.threads < 1 || p.memoryKiB < 8*uint32(p.threads) || p.memoryKiB > MaxMemoryKiB {
			t.Fatalf("parsePHC(%q) = m=%d t=%d p=%d; out of bounds", s, p.memoryKiB, p.time, p.threads)
		}
		if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen || len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
			t.Fatalf("parsePHC(%q): salt %d bytes, key %d bytes; out of bounds", s, len(p.salt), len(p.key))
		}
		if got := p.String(); got != s {
			t.Fatalf("parsePHC(%q).String() = %q; want the input back", s, got)
		}
	})
}
