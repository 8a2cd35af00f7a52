package password

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// cheap keeps tests fast; the format and code paths are the same as with the
// defaults.
var cheap = Params{MemoryKiB: 64, Time: 1}

var phcShape = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerifyRoundTrip(t *testing.T) {
	h := NewHasher(cheap)
	for _, pw := range []string{"", "hunter2", "pässwörd 🔑", strings.Repeat("long", 250)} {
		encoded, err := h.Hash(t.Context(), pw)
		if err != nil {
			t.Fatalf("Hash(%q) error: %v", pw, err)
		}
		if !phcShape.MatchString(encoded) {
			t.Errorf("Hash(%q) = %q; want the shape %s", pw, encoded, phcShape)
		}
		if ok, err := h.Verify(t.Context(), encoded, pw); !ok || err != nil {
			t.Errorf("Verify(Hash(%q), %q) = %v, %v; want true, nil", pw, pw, ok, err)
		}
		for _, wrong := range []string{pw + "x", strings.ToUpper(pw) + "!", "hunter3"} {
			if ok, err := h.Verify(t.Context(), encoded, wrong); ok || err != nil {
				t.Errorf("Verify(Hash(%q), %q) = %v, %v; want false, nil", pw, wrong, ok, err)
			}
		}
	}
}

func TestHashUsesFreshSalt(t *testing.T) {
	h := NewHasher(cheap)
	a, _ := h.Hash(t.Context(), "same")
	b, _ := h.Hash(t.Context(), "same")
	if a == b {
		t.Errorf("two hashes of the same password are both %q; want different salts", a)
	}
}

// TestVerifyInterop checks hashes made by another implementation (OpenSSL's
// argon2id, through Python's cryptography package), including parameters that
// differ from the Hasher's own.
func TestVerifyInterop(t *testing.T) {
	tests := []struct {
		name, encoded, password string
	}{
		{"cheap", "$argon2id$v=19$m=64,t=2,p=1$cGFybGV5LWludGVyb3Atc2FsdA$ZqZdAi6loMhtiMesehkzBsjCJhgbBuYNfs4TQ2MhPnY", "correct horse battery staple"},
		{"two lanes", "$argon2id$v=19$m=64,t=1,p=2$MDEyMzQ1Njc4OWFiY2RlZg$SxSH0vf0Kcm8Cw6p+3YTBZ1n8PxIZCqdGtTcJEQOJAE", "pässwörd"},
		{"OWASP defaults", "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$yxo0u725ht/u+ArqyyL37VGxPOyFMvsz2eBUq2J6aH8", "pässwörd"},
	}
	h := NewHasher(cheap)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := h.Verify(t.Context(), tt.encoded, tt.password); !ok || err != nil {
				t.Errorf("Verify(right password) = %v, %v; want true, nil", ok, err)
			}
			if ok, err := h.Verify(t.Context(), tt.encoded, tt.password+"!"); ok || err != nil {
				t.Errorf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestVerifyBcrypt(t *testing.T) {
	generated := func(pw string) string {
		t.Helper()
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("bcrypt.GenerateFromPassword: %v", err)
		}
		return string(b)
	}
	withPrefix := func(prefix, encoded string) string { return prefix + encoded[4:] }

	long := strings.Repeat("x", 72)
	tests := []struct {
		name, encoded, password string
		want                    bool
	}{
		{"$2a$ right", generated("hunter2"), "hunter2", true},
		{"$2a$ wrong", generated("hunter2"), "hunter3", false},
		{"$2b$ right", withPrefix("$2b$", generated("hunter2")), "hunter2", true},
		{"$2y$ right", withPrefix("$2y$", generated("hunter2")), "hunter2", true},
		{"$2y$ wrong", withPrefix("$2y$", generated("hunter2")), "", false},
		// From PHP's password_verify documentation.
		{"PHP $2y$ vector", "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq", "rasmuslerdorf", true},
		// bcrypt reads 72 bytes; Synapse's hashes of longer passwords were
		// made that way, so the tail must not matter.
		{"past 72 bytes ignored", generated(long), long + "tail", true},
		{"72nd byte counts", generated(long), long[:71] + "y", false},
	}
	h := NewHasher(cheap)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Verify(t.Context(), tt.encoded, tt.password)
			if got != tt.want || err != nil {
				t.Errorf("Verify(%q, %q) = %v, %v; want %v, nil", tt.encoded, tt.password, got, err, tt.want)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	const (
		salt = "MDEyMzQ1Njc4OWFiY2RlZg"
		key  = "SxSH0vf0Kcm8Cw6p+3YTBZ1n8PxIZCqdGtTcJEQOJAE"
		bc   = "$2b$04$abcdefghijklmnopqrstuuKTXu3ZUUSnJylNXDGDQ0pnMg1j7N6CC" // well-formed, 60 chars
	)
	argon := func(params, salt, key string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plaintext", "hunter2"},
		{"just the prefix", "$argon2id$"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params out of order", argon("t=1,m=64,p=1", salt, key)},
		{"extra param", argon("m=64,t=1,p=1,keyid=x", salt, key)},
		{"m zero", argon("m=0,t=1,p=1", salt, key)},
		{"m below 8 per lane", argon("m=15,t=1,p=2", salt, key)},
		{"m above the bound", argon("m=2097153,t=1,p=1", salt, key)},
		{"m overflows uint32", argon("m=4294967296,t=1,p=1", salt, key)},
		{"m overflows uint64", argon("m=99999999999999999999999,t=1,p=1", salt, key)},
		{"m leading zero", argon("m=064,t=1,p=1", salt, key)},
		{"m signed", argon("m=+64,t=1,p=1", salt, key)},
		{"m empty", argon("m=,t=1,p=1", salt, key)},
		{"t zero", argon("m=64,t=0,p=1", salt, key)},
		{"t above the bound", argon("m=64,t=65,p=1", salt, key)},
		{"p zero", argon("m=64,t=1,p=0", salt, key)},
		{"p above uint8", argon("m=4096,t=1,p=256", salt, key)},
		{"p negative", argon("m=64,t=1,p=-1", salt, key)},
		{"missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"empty hash", argon("m=64,t=1,p=1", salt, "")},
		{"extra field", argon("m=64,t=1,p=1", salt, key) + "$x"},
		{"salt too short", argon("m=64,t=1,p=1", "c2FsdA", key)},
		{"hash too short", argon("m=64,t=1,p=1", salt, "aGFzaA")},
		{"salt padded", argon("m=64,t=1,p=1", salt+"==", key)},
		{"salt not base64", argon("m=64,t=1,p=1", "MDEyMzQ1Njc4OWFiY2Rl*g", key)},
		{"salt stray bits", argon("m=64,t=1,p=1", "MDEyMzQ1Njc4OWFiY2RlZh", key)},
		{"salt url alphabet", argon("m=64,t=1,p=1", salt, strings.ReplaceAll(key, "+", "-"))},
		{"bcrypt short", "$2b$04$abc"},
		{"bcrypt long", bc + "x"},
		{"bcrypt cost too high", "$2b$31" + bc[6:]},
		{"bcrypt cost too low", "$2b$03" + bc[6:]},
		{"bcrypt cost not digits", "$2b$1a" + bc[6:]},
		{"bcrypt no separator", "$2b$04x" + bc[7:]},
		{"bcrypt bad salt", "$2b$04$!!!!!!!!!!!!!!!!!!!!!!" + bc[29:]},
		{"bcrypt 2x", "$2x$" + bc[4:]},
	}
	h := NewHasher(cheap)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(t.Context(), tt.encoded, "hunter2")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tt.encoded, ok, err)
			}
		})
	}
}

func TestNewHasherParams(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	tests := []struct {
		name string
		in   Params
		want Params
	}{
		{"zero means defaults", Params{}, Params{MemoryKiB: 19456, Time: 2, Threads: 1, Concurrency: procs}},
		{"set values kept", Params{MemoryKiB: 65536, Time: 3, Threads: 4, Concurrency: 7}, Params{65536, 3, 4, 7, 0}},
		{"negative concurrency means default", Params{Concurrency: -1}, Params{19456, 2, 1, procs, 0}},
		{"memory clamped up to 8 per lane", Params{MemoryKiB: 8, Threads: 4}, Params{32, 2, 4, procs, 0}},
		{"memory clamped down", Params{MemoryKiB: 1 << 30}, Params{MaxMemoryKiB, 2, 1, procs, 0}},
		{"time clamped down", Params{Time: 1000}, Params{19456, MaxTime, 1, procs, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHasher(tt.in)
			if h.params != tt.want {
				t.Errorf("NewHasher(%+v).params = %+v; want %+v", tt.in, h.params, tt.want)
			}
			if got := cap(h.slots); got != tt.want.Concurrency {
				t.Errorf("slots = %d; want %d", got, tt.want.Concurrency)
			}
			// Whatever the Hasher writes, parsePHC must accept.
			if _, err := parsePHC(h.dummy.String()); err != nil {
				t.Errorf("parsePHC(dummy) error: %v", err)
			}
		})
	}
}

// derivation records the arguments of one call to derive.
type derivation struct {
	time, memory    uint32
	threads         uint8
	saltLen, keyLen int
}

// TestVerifyDummyDoesVerifysWork checks that VerifyDummy derives with the same
// parameters, salt and key length as Verify of a hash this Hasher made.
func TestVerifyDummyDoesVerifysWork(t *testing.T) {
	h := NewHasher(Params{MemoryKiB: 64, Time: 1, Threads: 2})
	encoded, err := h.Hash(t.Context(), "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	var calls []derivation
	real := h.derive
	h.derive = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		calls = append(calls, derivation{time, memory, threads, len(salt), int(keyLen)})
		return real(pw, salt, time, memory, threads, keyLen)
	}
	if _, err := h.Verify(t.Context(), encoded, "wrong"); err != nil {
		t.Fatal(err)
	}
	h.VerifyDummy(t.Context(), "wrong")
	if len(calls) != 2 {
		t.Fatalf("derive called %d times; want 2", len(calls))
	}
	if calls[1] != calls[0] {
		t.Errorf("VerifyDummy derived with %+v; want Verify's %+v", calls[1], calls[0])
	}
}

// TestConcurrencyCap runs many hashes and checks through the derive seam that
// no more than Concurrency run at once, and that the cap is reached. synctest
// makes "every other caller is waiting" an observable state, not a sleep.
func TestConcurrencyCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 2, 9
		h := NewHasher(Params{MemoryKiB: 64, Time: 1, Concurrency: limit})
		encoded, err := h.Hash(t.Context(), "hunter2")
		if err != nil {
			t.Fatal(err)
		}

		var (
			mu             sync.Mutex
			inFlight, peak int
		)
		gate := make(chan struct{})
		real := h.derive
		h.derive = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			<-gate
			mu.Lock()
			inFlight--
			mu.Unlock()
			return real(pw, salt, time, memory, threads, keyLen)
		}

		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				switch i % 3 {
				case 0:
					_, _ = h.Hash(t.Context(), "pw")
				case 1:
					_, _ = h.Verify(t.Context(), encoded, "pw")
				case 2:
					h.VerifyDummy(t.Context(), "pw")
				}
			})
		}
		synctest.Wait() // all callers are now in derive or waiting for a slot
		mu.Lock()
		got := inFlight
		mu.Unlock()
		if got != limit {
			t.Errorf("in flight with %d callers = %d; want %d", callers, got, limit)
		}
		close(gate)
		wg.Wait()
		if peak != limit {
			t.Errorf("peak in flight = %d; want %d", peak, limit)
		}
	})
}

// TestCancelWhileWaiting fills the only slot, then checks that each entry
// point gives up when its context ends instead of waiting for the slot, and
// does no work.
func TestCancelWhileWaiting(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func(ctx context.Context, h *Hasher, encoded string) error
	}{
		{"Hash", func(ctx context.Context, h *Hasher, _ string) error {
			_, err := h.Hash(ctx, "pw")
			return err
		}},
		{"Verify argon2id", func(ctx context.Context, h *Hasher, encoded string) error {
			_, err := h.Verify(ctx, encoded, "pw")
			return err
		}},
		{"Verify bcrypt", func(ctx context.Context, h *Hasher, _ string) error {
			_, err := h.Verify(ctx, string(bc), "pw")
			return err
		}},
		{"VerifyDummy", func(ctx context.Context, h *Hasher, _ string) error {
			h.VerifyDummy(ctx, "pw")
			return ctx.Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := NewHasher(Params{MemoryKiB: 64, Time: 1, Concurrency: 1})
				encoded, err := h.Hash(t.Context(), "hunter2")
				if err != nil {
					t.Fatal(err)
				}
				gate := make(chan struct{})
				var derived atomic.Int32
				real := h.derive
				h.derive = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
					if derived.Add(1) == 1 { // only the holder blocks
						<-gate
					}
					return real(pw, salt, time, memory, threads, keyLen)
				}
				var holder sync.WaitGroup
				holder.Go(func() { _, _ = h.Hash(context.Background(), "holds the slot") })
				synctest.Wait()

				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				start := time.Now()
				err = tt.call(ctx, h, encoded)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error = %v; want context.DeadlineExceeded", err)
				}
				if got := time.Since(start); got != 3*time.Second {
					t.Errorf("gave up after %v; want 3s", got)
				}
				if got := derived.Load(); got != 1 {
					t.Errorf("derive called %d times; want 1 (the holder only)", got)
				}
				close(gate)
				holder.Wait()
			})
		})
	}
}

func TestCancelledContextDoesNoWork(t *testing.T) {
	h := NewHasher(cheap)
	h.derive = func([]byte, []byte, uint32, uint32, uint8, uint32) []byte {
		t.Fatal("derive called with a cancelled context")
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash(cancelled) error = %v; want context.Canceled", err)
	}
	h.VerifyDummy(ctx, "pw")
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	h := NewHasher(Params{})
	ctx := b.Context()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	b.ReportAllocs()
	h := NewHasher(Params{})
	ctx := b.Context()
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := h.Verify(ctx, encoded, "correct horse battery staple"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
