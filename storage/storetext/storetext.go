// Package storetext owns the one rule for text that Parley stores: it is
// valid UTF-8 and holds no U+0000. PostgreSQL's text type refuses both, so
// without the rule the same request succeeded on SQLite and failed with a
// 500 on PostgreSQL. Parley applies it on both engines, so they agree, and
// at two places: the client API's edges (path, query and JSON body), which
// answer 400 before anything is written, and the store's driver, which
// refuses such an argument on any route the edges missed.
//
// It must stay a leaf: storage, rooms and clientapi all import it.
package storetext

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// ErrUnstorable is the sentinel every refusal wraps; callers map it to
// 400 (M_BAD_JSON for a body, M_INVALID_PARAM for a parameter).
var ErrUnstorable = errors.New("text is not storable")

// textError wraps ErrUnstorable with a specific reason, without allocating.
type textError struct{ msg string }

func (e *textError) Error() string        { return e.msg }
func (e *textError) Is(target error) bool { return target == ErrUnstorable }

var (
	nulErr  error = &textError{"text is not storable: it contains U+0000"}
	utf8Err error = &textError{"text is not storable: it is not valid UTF-8"}
)

// Check reports whether s may be stored.
func Check(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return nulErr
	}
	if !utf8.ValidString(s) {
		return utf8Err
	}
	return nil
}

// CheckBytes is Check for a byte slice.
func CheckBytes(b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return nulErr
	}
	if !utf8.Valid(b) {
		return utf8Err
	}
	return nil
}

// CheckJSON reports whether a JSON text may be stored once decoded: it is
// valid UTF-8 and none of its strings or keys holds the escape \u0000
// (which decodes to U+0000). An escaped backslash followed by "u0000"
// ("\\u0000") is plain text and passes. It does not check that the input
// is JSON; run it on input already known to be valid JSON.
func CheckJSON(b []byte) error {
	if err := CheckBytes(b); err != nil {
		return err
	}
	const esc = `\u0000`
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(esc))
		if i < 0 {
			return nil
		}
		i += off
		// The escape is real when the backslash itself is not escaped:
		// an even number of backslashes comes before it.
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return nulErr
		}
		off = i + len(esc)
	}
}
