package pdu

import (
	"bytes"
	"errors"
	"sort"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/crypto/canonicaljson"
)

// maxSafeInt is 2^53-1, the largest magnitude canonical JSON allows.
const maxSafeInt = 1<<53 - 1

// canonicalize checks data against the JSON grammar and the Matrix value
// rules (integers in [-(2^53)+1, 2^53-1], no fractions, exponents or -0, no
// duplicate keys, valid UTF-8, no lone surrogates) and returns its
// canonical encoding.
//
// mautrix's canonicaljson does the re-encoding but, in its non-jsonv2 build,
// neither enforces those value rules nor rejects malformed escapes, and it
// writes \u00XX control escapes in upper case where the spec's grammar
// requires lower case; validate and lowerEscapes close those gaps.
func canonicalize(data []byte) ([]byte, error) {
	if err := validate(data); err != nil {
		return nil, err
	}
	// Deprecated upstream in favour of jsonv2-only APIs, but this is the entry
	// point that builds on a plain Go 1.26 toolchain.
	out := canonicaljson.CanonicalJSONAssumeValid(data) //nolint:staticcheck
	if out == nil {
		return nil, errors.New("canonical JSON encoding failed")
	}
	return lowerEscapes(out), nil
}

// lowerEscapes lower-cases the hex digits of \uXXXX escapes in canonical
// output. Canonical output only keeps \u escapes for control characters, and
// backslashes only occur inside strings, so a flat scan is exact.
func lowerEscapes(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u`)) {
		return b
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] == 'u' && i+5 < len(b) {
			for j := i + 2; j < i+6; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 5
		} else {
			i++
		}
	}
	return b
}

// appendString appends s as a canonical JSON string: only '"', '\' and
// control characters are escaped, control characters without a short
// escape as lower-case \u00xx. s must be valid UTF-8.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
	}
	return append(dst, '"')
}

// member is one key of a JSON object whose value is already canonical.
type member struct {
	key string
	raw []byte
}

// objectMembers splits a canonical JSON object into its members, in the
// order they appear (which is sorted for canonical input). ok is false when
// obj is not an object.
func objectMembers(obj []byte) (members []member, ok bool) {
	res := gjson.ParseBytes(obj)
	if !res.IsObject() {
		return nil, false
	}
	res.ForEach(func(k, val gjson.Result) bool {
		raw := []byte(val.Raw)
		if end := val.Index + len(val.Raw); val.Index > 0 && end <= len(obj) {
			raw = obj[val.Index:end]
		}
		members = append(members, member{key: k.String(), raw: raw})
		return true
	})
	return members, true
}

// encodeObject writes members as a canonical JSON object. It sorts members
// by key in place; values must already be canonical.
func encodeObject(members []member) []byte {
	sort.Slice(members, func(i, j int) bool { return members[i].key < members[j].key })
	n := 2
	for _, m := range members {
		n += len(m.key) + len(m.raw) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, m.key)
		out = append(out, ':')
		out = append(out, m.raw...)
	}
	return append(out, '}')
}

// findMember returns the value of key, or nil.
func findMember(members []member, key string) []byte {
	for _, m := range members {
		if m.key == key {
			return m.raw
		}
	}
	return nil
}
