package pdu

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic (the
// recover guard turning a panic into "unparseable event" counts as a
// failure here), and whatever it accepts must be stable: parsing Raw again
// gives the same ID and Raw, and Raw respects the size limit.
func FuzzParse(f *testing.F) {
	key := testKey("example.org")
	for _, v := range []string{"10", "11"} {
		for _, p := range seedProtos() {
			ev, err := Build(p, v, key)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(ev.Raw, v == "11")
		}
	}
	f.Add([]byte(`{"a":"\ud83d\ude00","b":[1,-2,{"c":null}]}`), true)
	f.Add([]byte(`{"type":1}`), false)
	f.Fuzz(func(t *testing.T, raw []byte, v11 bool) {
		v := "10"
		if v11 {
			v = "11"
		}
		ev, err := Parse(raw, v)
		if err != nil && strings.Contains(err.Error(), "unparseable event") {
			t.Fatalf("Parse panicked: %v", err)
		}
		if ev == nil {
			return
		}
		if len(ev.Raw) > maxPDUBytes {
			t.Fatalf("Parse accepted a %d-byte event", len(ev.Raw))
		}
		again, err2 := Parse(ev.Raw, v)
		if again == nil || again.ID != ev.ID || !bytes.Equal(again.Raw, ev.Raw) {
			t.Fatalf("Parse(Raw) = %v, %v; not stable for %s", again, err2, ev.Raw)
		}
		_ = ev.Redact(v)
		_ = ev.RequiredSigners()
	})
}

// FuzzCanonicalJSON drives the content path of Build: whatever canonicalize
// accepts must be valid JSON with the same meaning, already canonical
// (canonicalizing again is a no-op), and buildable and parseable as content.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":"2","a":"1"}`, `{"a":"\u65E5\u001F\/"}`, `{"本":2,"日":1}`, `["\u000B\u007F\u2028<>&"]`,
		`{"n":[9007199254740991,-9007199254740991]}`, `{"a":{"b":{"c":[true,false,null,""]}}}`, `{"\u0000":"\\"}`} {
		f.Add([]byte(s))
	}
	key := testKey("example.org")
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("canonicalize(%q) = %q, not valid JSON", in, out)
		}
		again, err := canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonicalize is not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		if ref := referenceCanonical(t, in); !bytes.Equal(ref, out) {
			t.Fatalf("canonicalize(%q) = %q, reference encoder says %q", in, out, ref)
		}
		var a, b any
		da, db := json.NewDecoder(bytes.NewReader(in)), json.NewDecoder(bytes.NewReader(out))
		da.UseNumber()
		db.UseNumber()
		if da.Decode(&a) != nil || db.Decode(&b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("canonicalize changed the meaning of %q: %q", in, out)
		}
		if len(out) == 0 || out[0] != '{' {
			return
		}
		p := message()
		p.Content = out
		ev, err := Build(p, "11", key)
		if err != nil {
			return // too large is the only expected reason
		}
		if !bytes.Equal(ev.Content, out) {
			t.Fatalf("Build changed canonical content %q to %q", out, ev.Content)
		}
		parsed, err := Parse(ev.Raw, "11")
		if err != nil || parsed.ID != ev.ID {
			t.Fatalf("Parse(Build(content %q)) = %v, %v", out, parsed, err)
		}
	})
}

// referenceCanonical is an independent canonical JSON encoder (decode with
// encoding/json, re-encode with sorted keys) for input canonicalize has
// already vetted. Both mautrix canonicaljson builds are held to it.
func referenceCanonical(t *testing.T, in []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(in))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("reference decoder rejects vetted input %q: %v", in, err)
	}
	var enc func(dst []byte, v any) []byte
	enc = func(dst []byte, v any) []byte {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			dst = append(dst, '{')
			for i, k := range keys {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(appendString(dst, k), ':')
				dst = enc(dst, v[k])
			}
			return append(dst, '}')
		case []any:
			dst = append(dst, '[')
			for i, e := range v {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = enc(dst, e)
			}
			return append(dst, ']')
		case string:
			return appendString(dst, v)
		case json.Number:
			return append(dst, v...)
		case bool:
			return strconv.AppendBool(dst, v)
		default:
			return append(dst, "null"...)
		}
	}
	return enc(nil, v)
}

// seedProtos covers each event type the redaction algorithm treats specially.
func seedProtos() []Proto {
	var out []Proto
	for _, c := range []struct{ typ, sk, content string }{
		{"m.room.message", "", `{"body":"hi","msgtype":"m.text"}`},
		{"m.room.create", "-", `{"room_version":"11","creator":"@alice:example.org"}`},
		{"m.room.member", "@alice:example.org", `{"membership":"join","displayname":"A"}`},
		{"m.room.member", "@bob:b.org", `{"membership":"invite","third_party_invite":{"signed":{"mxid":"@bob:b.org","token":"t"}}}`},
		{"m.room.power_levels", "-", `{"users":{"@alice:example.org":100},"invite":50,"notifications":{"room":50}}`},
		{"m.room.join_rules", "-", `{"join_rule":"restricted","allow":[]}`},
		{"m.room.history_visibility", "-", `{"history_visibility":"shared"}`},
	} {
		p := message()
		p.Type, p.Content = c.typ, json.RawMessage(c.content)
		switch c.sk {
		case "":
		case "-":
			p.StateKey = strPtr("")
		default:
			p.StateKey = strPtr(c.sk)
		}
		out = append(out, p)
	}
	return out
}
