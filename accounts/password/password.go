// Package password owns how Parley stores and checks account passwords:
// argon2id in the PHC string format for every hash it writes, bcrypt for hashes
// imported from Synapse, and a cap on hashes in flight, so that a login flood
// queues here instead of taking the memory and CPU the rest of the server
// needs.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrMalformedHash is returned by Verify when the stored hash is not one it can
// check: unparseable, an unknown scheme, or parameters out of bounds. It means
// a bad row in storage, not a wrong password.
var ErrMalformedHash = errors.New("malformed password hash")

// Defaults are OWASP's argon2id recommendation (m=19 MiB, t=2, p=1), the
// cheapest setting it considers safe: a login costs tens of milliseconds and
// 19 MiB, which a homeserver can afford for every client.
const (
	DefaultMemoryKiB = 19456
	DefaultTime      = 2
	DefaultThreads   = 1
)

const (
	saltLen = 16 // RFC 9106's recommendation
	keyLen  = 32
	// MaxBcryptCost bounds imported bcrypt hashes: cost 16 already takes
	// seconds (Synapse's default is 12), and a higher one is more likely
	// corruption or sabotage than a setting anyone chose.
	MaxBcryptCost = 16
)

// Params sets the cost of new hashes and how many may run at once.
type Params struct {
	// MemoryKiB is the memory one hash uses. Zero value means 19456 (19 MiB).
	// Values above MaxMemoryKiB count as MaxMemoryKiB, and values below 8 per
	// thread as 8 per thread, so every hash written can be verified again.
	MemoryKiB uint32
	// Time is the number of passes over that memory. Zero value means 2.
	// Values above MaxTime count as MaxTime.
	Time uint32
	// Threads is the argon2 parallelism written into new hashes. Zero value
	// means 1: the concurrency cap, not one hash's lanes, is what should use
	// the cores of a server with many logins.
	Threads uint8
	// Concurrency is how many hashes (of any kind, including checks) may run
	// at once; others wait. Peak memory is Concurrency*MemoryKiB. Zero value
	// means runtime.GOMAXPROCS(0), the CPUs this process may actually use.
	Concurrency int
	// MaxWaiting caps the calls waiting for a slot; one more fails at once
	// with ErrBusy, so a login flood gets quick refusals instead of a queue
	// that delays every login by seconds. Zero value means unbounded, as
	// before; a server sets it from config.
	MaxWaiting int
}

// ErrBusy is returned when MaxWaiting calls already wait for a hashing
// slot. Nothing was computed; the caller may retry shortly.
var ErrBusy = errors.New("password hashing is busy")

// withDefaults fills zero values and clamps to what parsePHC accepts.
func (p Params) withDefaults() Params {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultMemoryKiB
	}
	if p.Time == 0 {
		p.Time = DefaultTime
	}
	if p.Threads == 0 {
		p.Threads = DefaultThreads
	}
	if p.Concurrency <= 0 {
		p.Concurrency = runtime.GOMAXPROCS(0)
	}
	p.MemoryKiB = min(max(p.MemoryKiB, 8*uint32(p.Threads)), MaxMemoryKiB)
	p.Time = min(p.Time, MaxTime)
	return p
}

// Hasher hashes and checks passwords. It is safe for concurrent use; that is
// its point.
type Hasher struct {
	params Params
	// slots holds one value per hash in flight.
	slots chan struct{}
	// waiting counts calls blocked in acquire; atomic.
	waiting atomic.Int64
	// dummy has the shape of a hash made with params, for VerifyDummy.
	dummy phc
	// derive is argon2.IDKey; tests replace it to watch concurrency.
	derive func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

// NewHasher returns a Hasher for p, with zero fields set to their defaults.
func NewHasher(p Params) *Hasher {
	p = p.withDefaults()
	h := &Hasher{
		params: p,
		slots:  make(chan struct{}, p.Concurrency),
		derive: argon2.IDKey,
	}
	// VerifyDummy's work does not depend on the stored key's value, only on
	// the parameters and lengths, so random bytes do as well as a real hash
	// and cost nothing to make.
	h.dummy = h.newPHC()
	h.dummy.key = make([]byte, keyLen)
	rand.Read(h.dummy.key)
	return h
}

// newPHC returns the parameters for a new hash with a fresh salt.
func (h *Hasher) newPHC() phc {
	p := phc{memoryKiB: h.params.MemoryKiB, time: h.params.Time, threads: h.params.Threads, salt: make([]byte, saltLen)}
	rand.Read(p.salt) // never fails: crypto/rand crashes the program instead
	return p
}

// Hash returns password's argon2id hash as a PHC string. It waits for a slot
// first, and returns the context's error if ctx ends before one is free.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.newPHC()
	p.key = h.derive([]byte(password), p.salt, p.time, p.memoryKiB, p.threads, keyLen)
	return p.String(), nil
}

// Verify reports whether password matches encoded, an argon2id PHC string or a
// bcrypt hash ($2a$, $2b$, $2y$, as Synapse stores them). A wrong password is
// (false, nil); an error means encoded is unusable (ErrMalformedHash) or ctx
// ended while waiting for a slot. The comparison is constant-time.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	if isBcrypt(encoded) {
		return h.verifyBcrypt(ctx, encoded, password)
	}
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return h.matches(p, password), nil
}

// VerifyDummy does the work of Verify against a hash made with the current
// parameters, and throws the answer away. Call it when the user does not
// exist, so that answering "no such user" takes as long as "wrong password"
// and response times do not reveal which accounts exist. It returns what
// Verify would have for waiting (ErrBusy, or ctx's end), so that a busy
// server refuses unknown and known users alike.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	h.matches(h.dummy, password)
	return nil
}

func (h *Hasher) matches(p phc, password string) bool {
	got := h.derive([]byte(password), p.salt, p.time, p.memoryKiB, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1
}

func isBcrypt(encoded string) bool {
	return strings.HasPrefix(encoded, "$2a$") || strings.HasPrefix(encoded, "$2b$") || strings.HasPrefix(encoded, "$2y$")
}

// bcryptLen is the length of every well-formed bcrypt hash:
// "$2b$" + 2-digit cost + "$" + 22 characters of salt + 31 of hash.
const bcryptLen = 60

func (h *Hasher) verifyBcrypt(ctx context.Context, encoded, password string) (bool, error) {
	if len(encoded) != bcryptLen || encoded[6] != '$' {
		return false, fmt.Errorf("%w: bcrypt: want 60 characters, $2b$NN$ then salt and hash", ErrMalformedHash)
	}
	if cost, err := decimalCost(encoded[4:6]); err != nil || cost < bcrypt.MinCost || cost > MaxBcryptCost {
		return false, fmt.Errorf("%w: bcrypt: cost %q is not %d to %d", ErrMalformedHash, encoded[4:6], bcrypt.MinCost, MaxBcryptCost)
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	// bcrypt ignores password bytes past the 72nd, as the C implementations
	// that made Synapse's hashes did, so long passwords still match.
	switch err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password)); {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("%w: bcrypt: %w", ErrMalformedHash, err)
	}
}

func decimalCost(s string) (int, error) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, errors.New("not two digits")
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), nil
}

// acquire waits for a hashing slot. An already-ended ctx fails even when a
// slot is free, so a cancelled request never starts expensive work.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for a hashing slot: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
		return nil // a free slot: no wait, no count
	default:
	}
	if n := h.waiting.Add(1); h.params.MaxWaiting > 0 && n > int64(h.params.MaxWaiting) {
		h.waiting.Add(-1)
		return ErrBusy
	}
	defer h.waiting.Add(-1)
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }
