package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds on the argon2id parameters Parley will hash or verify with. Stored
// hashes are data, possibly imported from elsewhere: without bounds one bad
// row could ask for terabytes of memory or hours of work per login attempt.
const (
	// MaxMemoryKiB is 2 GiB, the largest memory cost RFC 9106 recommends.
	MaxMemoryKiB = 2 << 20
	// MaxTime bounds the passes over memory; recommended settings use 1 to 3.
	MaxTime = 64
	// Salts shorter than 8 bytes are rejected by the PHC argon2 spec; longer
	// than 64 is no use to anyone.
	minSaltLen, maxSaltLen = 8, 64
	// A hash shorter than 16 bytes would let random guesses succeed too often
	// to call it a password check.
	minKeyLen, maxKeyLen = 16, 128
)

// phc is a parsed argon2id PHC string:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>.
type phc struct {
	memoryKiB, time uint32
	threads         uint8
	salt, key       []byte
}

func (p phc) String() string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		p.memoryKiB, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(p.salt), base64.RawStdEncoding.EncodeToString(p.key))
}

// parsePHC parses an argon2id PHC string. It accepts only the canonical form
// that libargon2 and Parley write (parameters in m,t,p order, decimal without
// leading zeros, base64 without padding or stray bits), and only parameters within the bounds above,
// so whatever it returns is safe to hand to argon2.IDKey.
func parsePHC(s string) (phc, error) {
	var p phc
	rest, ok := strings.CutPrefix(s, "$argon2id$v=19$m=")
	if !ok {
		return p, fmt.Errorf("%w: not an argon2id v=19 PHC string", ErrMalformedHash)
	}
	m, rest, err := decimal(rest, ",t=", MaxMemoryKiB)
	if err != nil {
		return p, fmt.Errorf("%w: m: %w", ErrMalformedHash, err)
	}
	t, rest, err := decimal(rest, ",p=", MaxTime)
	if err != nil {
		return p, fmt.Errorf("%w: t: %w", ErrMalformedHash, err)
	}
	threads, rest, err := decimal(rest, "$", 255)
	if err != nil {
		return p, fmt.Errorf("%w: p: %w", ErrMalformedHash, err)
	}
	switch {
	case t < 1:
		return p, fmt.Errorf("%w: t must be at least 1", ErrMalformedHash)
	case threads < 1:
		return p, fmt.Errorf("%w: p must be at least 1", ErrMalformedHash)
	case m < 8*threads:
		// libargon2 refuses this; argon2.IDKey would silently round it up.
		return p, fmt.Errorf("%w: m must be at least 8*p", ErrMalformedHash)
	}
	saltText, keyText, ok := strings.Cut(rest, "$")
	if !ok {
		return p, fmt.Errorf("%w: missing hash", ErrMalformedHash)
	}
	if p.salt, err = decodeB64(saltText, minSaltLen, maxSaltLen); err != nil {
		return p, fmt.Errorf("%w: salt: %w", ErrMalformedHash, err)
	}
	if p.key, err = decodeB64(keyText, minKeyLen, maxKeyLen); err != nil {
		return p, fmt.Errorf("%w: hash: %w", ErrMalformedHash, err)
	}
	p.memoryKiB, p.time, p.threads = uint32(m), uint32(t), uint8(threads)
	return p, nil
}

// decimal reads a canonical unsigned decimal of at most limit from the front
// of s, followed by sep, and returns the value and what follows sep.
func decimal(s, sep string, limit uint64) (uint64, string, error) {
	digits, rest, ok := strings.Cut(s, sep)
	if !ok {
		return 0, "", fmt.Errorf("missing %q after value", sep)
	}
	if digits == "" || len(digits) > 1 && digits[0] == '0' || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, "", fmt.Errorf("%q is not a canonical decimal", digits)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > limit {
		return 0, "", fmt.Errorf("%s is above the limit of %d", digits, limit)
	}
	return n, rest, nil
}

// decodeB64 decodes the PHC format's base64 (standard alphabet, no padding)
// and insists on the canonical spelling, so each hash has exactly one.
func decodeB64(s string, minLen, maxLen int) ([]byte, error) {
	enc := base64.RawStdEncoding
	// Check the length before decoding so a huge field costs nothing.
	if n := enc.DecodedLen(len(s)); n < minLen || n > maxLen {
		return nil, fmt.Errorf("%d bytes, want %d to %d", n, minLen, maxLen)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}
