package pdu

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting so hostile input cannot exhaust the stack of
// the recursive validator or of gjson. Real events nest a handful of levels.
const maxDepth = 256

// validate is a strict recursive-descent JSON checker for the canonical
// JSON value rules; see canonicalize.
func validate(data []byte) error {
	v := validator{data: data}
	v.skipSpace()
	if err := v.value(0); err != nil {
		return err
	}
	v.skipSpace()
	if v.pos != len(v.data) {
		return fmt.Errorf("unexpected data after JSON value at offset %d", v.pos)
	}
	return nil
}

type validator struct {
	data []byte
	pos  int
}

func (v *validator) skipSpace() {
	for v.pos < len(v.data) {
		switch v.data[v.pos] {
		case ' ', '\t', '\n', '\r':
			v.pos++
		default:
			return
		}
	}
}

func (v *validator) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", v.pos, fmt.Sprintf(format, args...))
}

func (v *validator) value(depth int) error {
	if v.pos >= len(v.data) {
		return v.errorf("unexpected end of JSON")
	}
	switch c := v.data[v.pos]; {
	case c == '{':
		return v.object(depth + 1)
	case c == '[':
		return v.array(depth + 1)
	case c == '"':
		_, err := v.str(false)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(v.data[v.pos:], []byte(lit)) {
				v.pos += len(lit)
				return nil
			}
		}
		return v.errorf("invalid character %q", c)
	}
}

func (v *validator) object(depth int) error {
	if depth > maxDepth {
		return v.errorf("JSON nested deeper than %d levels", maxDepth)
	}
	v.pos++ // '{'
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == '}' {
		v.pos++
		return nil
	}
	var keys []string
	for {
		if v.pos >= len(v.data) || v.data[v.pos] != '"' {
			return v.errorf("expected object key")
		}
		key, err := v.str(true)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k == key {
				return v.errorf("duplicate object key %q", key)
			}
		}
		keys = append(keys, key)
		v.skipSpace()
		if v.pos >= len(v.data) || v.data[v.pos] != ':' {
			return v.errorf("expected ':' after object key")
		}
		v.pos++
		v.skipSpace()
		if err := v.value(depth); err != nil {
			return err
		}
		v.skipSpace()
		if v.pos >= len(v.data) {
			return v.errorf("unterminated object")
		}
		switch v.data[v.pos] {
		case ',':
			v.pos++
			v.skipSpace()
		case '}':
			v.pos++
			return nil
		default:
			return v.errorf("expected ',' or '}' in object")
		}
	}
}

func (v *validator) array(depth int) error {
	if depth > maxDepth {
		return v.errorf("JSON nested deeper than %d levels", maxDepth)
	}
	v.pos++ // '['
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == ']' {
		v.pos++
		return nil
	}
	for {
		if err := v.value(depth); err != nil {
			return err
		}
		v.skipSpace()
		if v.pos >= len(v.data) {
			return v.errorf("unterminated array")
		}
		switch v.data[v.pos] {
		case ',':
			v.pos++
			v.skipSpace()
		case ']':
			v.pos++
			return nil
		default:
			return v.errorf("expected ',' or ']' in array")
		}
	}
}

func (v *validator) number() error {
	start := v.pos
	neg := v.data[v.pos] == '-'
	if neg {
		v.pos++
	}
	digits := v.pos
	if v.pos >= len(v.data) || v.data[v.pos] < '0' || v.data[v.pos] > '9' {
		return v.errorf("invalid number")
	}
	if v.data[v.pos] == '0' {
		v.pos++
	} else {
		for v.pos < len(v.data) && v.data[v.pos] >= '0' && v.data[v.pos] <= '9' {
			v.pos++
		}
	}
	if v.pos < len(v.data) {
		switch v.data[v.pos] {
		case '.', 'e', 'E':
			return v.errorf("number %s… is not an integer; canonical JSON forbids fractions and exponents", v.data[start:v.pos])
		}
	}
	text := v.data[digits:v.pos]
	if len(text) > 16 {
		return v.errorf("integer %s is outside the canonical JSON range ±(2^53-1)", v.data[start:v.pos])
	}
	var n int64
	for _, d := range text {
		n = n*10 + int64(d-'0')
	}
	if n > maxSafeInt {
		return v.errorf("integer %s is outside the canonical JSON range ±(2^53-1)", v.data[start:v.pos])
	}
	if neg && n == 0 {
		return v.errorf("-0 is not allowed in canonical JSON")
	}
	return nil
}

// str checks a string starting at the opening quote. When decode is set it
// returns the decoded value (used for duplicate key detection).
func (v *validator) str(decode bool) (string, error) {
	v.pos++ // opening quote
	start := v.pos
	var buf []byte
	plain := true
	for v.pos < len(v.data) {
		c := v.data[v.pos]
		switch {
		case c == '"':
			s := v.data[start:v.pos]
			v.pos++
			if !decode {
				return "", nil
			}
			if plain {
				return string(s), nil
			}
			return string(buf), nil
		case c < 0x20:
			return "", v.errorf("unescaped control character in string")
		case c == '\\':
			if plain && decode {
				buf = append(buf, v.data[start:v.pos]...)
			}
			plain = false
			r, err := v.escape()
			if err != nil {
				return "", err
			}
			if decode {
				buf = utf8.AppendRune(buf, r)
			}
		case c < utf8.RuneSelf:
			if !plain && decode {
				buf = append(buf, c)
			}
			v.pos++
		default:
			r, size := utf8.DecodeRune(v.data[v.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", v.errorf("invalid UTF-8 in string")
			}
			if !plain && decode {
				buf = append(buf, v.data[v.pos:v.pos+size]...)
			}
			v.pos += size
		}
	}
	return "", v.errorf("unterminated string")
}

// escape consumes one escape sequence starting at the backslash.
func (v *validator) escape() (rune, error) {
	if v.pos+1 >= len(v.data) {
		return 0, v.errorf("unterminated escape")
	}
	c := v.data[v.pos+1]
	v.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, v.errorf("invalid escape \\%c", c)
	}
	r, ok := v.hex4()
	if !ok {
		return 0, v.errorf("invalid \\u escape")
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, v.errorf("lone low surrogate in string")
	case r >= 0xD800 && r <= 0xDBFF:
		if v.pos+1 >= len(v.data) || v.data[v.pos] != '\\' || v.data[v.pos+1] != 'u' {
			return 0, v.errorf("lone high surrogate in string")
		}
		v.pos += 2
		lo, ok := v.hex4()
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, v.errorf("invalid surrogate pair in string")
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
	}
	return r, nil
}

func (v *validator) hex4() (rune, bool) {
	if v.pos+4 > len(v.data) {
		return 0, false
	}
	var r rune
	for _, c := range v.data[v.pos : v.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	v.pos += 4
	return r, true
}

// MaxTxnIDBytes bounds a transaction ID. The spec leaves txnIds opaque;
// 255 bytes is what Parley has always accepted.
const MaxTxnIDBytes = 255

// ValidTxnID reports whether a client's transaction ID may be kept and
// echoed back: 1 to MaxTxnIDBytes bytes of valid UTF-8 without control
// characters (C0, DEL or C1). The ID reappears in the sender's /sync and
// /messages as unsigned.transaction_id, so a byte that JSON cannot carry
// as it is (invalid UTF-8) or that a client may mangle (a control
// character) is refused at the door rather than rewritten on the way out.
func ValidTxnID(txn string) bool {
	if txn == "" || len(txn) > MaxTxnIDBytes {
		return false
	}
	for i := 0; i < len(txn); {
		c := txn[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(txn[i:])
		if r == utf8.RuneError && size <= 1 || r >= 0x80 && r <= 0x9f {
			return false
		}
		i += size
	}
	return true
}
