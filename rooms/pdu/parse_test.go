package pdu

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRejects(t *testing.T) {
	valid := mustBuild(t, message(), "11").Raw
	set := func(key, raw string) []byte {
		return edit(t, valid, func(m map[string]json.RawMessage) { m[key] = json.RawMessage(raw) })
	}
	del := func(key string) []byte {
		return edit(t, valid, func(m map[string]json.RawMessage) { delete(m, key) })
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{"not JSON", []byte(`{`)},
		{"array", []byte(`[]`)},
		{"string", []byte(`"x"`)},
		{"empty object", []byte(`{}`)},
		{"float anywhere", set("content", `{"a":0.5}`)},
		{"exponent", set("depth", `1e2`)},
		{"int too big", set("content", `{"a":9007199254740992}`)},
		{"negative zero", set("content", `{"a":-0}`)},
		{"duplicate key", []byte(strings.Replace(string(valid), `{"auth_events"`, `{"depth":1,"auth_events"`, 1))},
		{"type not string", set("type", `1`)},
		{"type empty", set("type", `""`)},
		{"type too long", set("type", string(quote(long(256))))},
		{"state_key too long", set("state_key", string(quote(long(256))))},
		{"state_key null", set("state_key", `null`)},
		{"sender invalid", set("sender", `"alice"`)},
		{"sender too long", set("sender", string(quote("@"+long(250)+":example.org")))},
		{"room_id invalid", set("room_id", `"!nodomain"`)},
		{"content array", set("content", `[]`)},
		{"prev_events not array", set("prev_events", `"$x"`)},
		{"prev_events bad ID", set("prev_events", `["$abc:example.org"]`)},
		{"auth_events number", set("auth_events", `[1]`)},
		{"depth negative", set("depth", `-1`)},
		{"depth string", set("depth", `"1"`)},
		{"origin_server_ts string", set("origin_server_ts", `"1"`)},
		{"hashes not object", set("hashes", `"abc"`)},
		{"hashes short", set("hashes", `{"sha256":"AAAA"}`)},
		{"hashes not base64", set("hashes", `{"sha256":"!!!"}`)},
		{"signatures not object", set("signatures", `[]`)},
		{"signatures inner not object", set("signatures", `{"example.org":"x"}`)},
		{"signatures value not string", set("signatures", `{"example.org":{"ed25519:a":1}}`)},
		{"too large", set("content", `{"body":"`+long(maxPDUBytes)+`"}`)},
		{"input too large", set("unsigned", `{"pad":"`+long(maxInputBytes)+`"}`)},
	}
	for _, key := range []string{"type", "room_id", "sender", "content", "prev_events", "auth_events", "depth", "origin_server_ts", "hashes", "signatures"} {
		tests = append(tests, struct {
			name string
			raw  []byte
		}{"missing " + key, del(key)})
	}
	for _, tt := range tests {
		if ev, err := Parse(tt.raw, "11"); !errors.Is(err, ErrInvalid) || ev != nil {
			t.Errorf("Parse(%s) = %v, %v, want nil, ErrInvalid", tt.name, ev, err)
		}
	}
	if _, err := Parse(valid, "12"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(room version 12) = %v, want ErrInvalid", err)
	}
}

func TestParseBadHashKeepsRedactedCopy(t *testing.T) {
	orig := mustBuild(t, message(), "11")
	tampered := edit(t, orig.Raw, func(m map[string]json.RawMessage) {
		m["content"] = json.RawMessage(`{"body":"changed in transit","msgtype":"m.text"}`)
	})
	ev, err := Parse(tampered, "11")
	if !errors.Is(err, ErrBadHash) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse(tampered content) error = %v, want ErrBadHash", err)
	}
	if ev == nil || ev.ID != orig.ID || string(ev.Content) != `{}` {
		t.Fatalf("Parse(tampered content) = %+v, want the redacted copy with ID %s", ev, orig.ID)
	}
	// The signature covers only the redacted form, so it still verifies.
	if err := ev.VerifySignature("11", "example.org", "ed25519:test", testKey("example.org").Public()); err != nil {
		t.Errorf("VerifySignature(redacted copy) = %v, want nil", err)
	}
	// A tampered protected field changes the reference hash and breaks the signature.
	moved := edit(t, orig.Raw, func(m map[string]json.RawMessage) { m["depth"] = json.RawMessage(`43`) })
	ev, err = Parse(moved, "11")
	if !errors.Is(err, ErrBadHash) || ev.ID == orig.ID {
		t.Fatalf("Parse(tampered depth) = %v, %v, want ErrBadHash and a different ID", ev, err)
	}
	if err := ev.VerifySignature("11", "example.org", "ed25519:test", testKey("example.org").Public()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifySignature(tampered depth) = %v, want ErrBadSignature", err)
	}
}

func TestParseLegacyTopLevelKeys(t *testing.T) {
	key := testKey("example.org")
	f := baseFields()
	f["origin"] = `"example.org"`
	f["membership"] = `"join"`
	f["prev_state"] = `[]`
	f["x_unknown"] = `{"nested":[1,2]}`
	for _, v := range []string{"10", "11"} {
		raw := forge(t, f, v, key)
		ev, err := Parse(raw, v)
		if err != nil {
			t.Fatalf("Parse(v%s with legacy keys) = %v", v, err)
		}
		if err := ev.VerifySignature(v, "example.org", key.KeyID, key.Public()); err != nil {
			t.Errorf("VerifySignature(v%s with legacy keys) = %v, want nil", v, err)
		}
		red := string(ev.Redact(v).Raw)
		keepsLegacy := strings.Contains(red, `"origin"`) && strings.Contains(red, `"membership"`) && strings.Contains(red, `"prev_state"`)
		if keepsLegacy != (v == "10") || strings.Contains(red, "x_unknown") {
			t.Errorf("Redact(v%s) = %s, want origin/membership/prev_state kept only in v10 and x_unknown dropped", v, red)
		}
	}
	// A v10 redaction's top-level redacts must be a string.
	f = baseFields()
	f["type"], f["redacts"] = `"m.room.redaction"`, `5`
	if _, err := Parse(forge(t, f, "10", key), "10"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(v10 redaction with numeric redacts) = %v, want ErrInvalid", err)
	}
	// In v11 the top-level copy is not authoritative and may be anything.
	f["content"] = `{"redacts":"` + fakeID("t") + `"}`
	ev, err := Parse(forge(t, f, "11", key), "11")
	if err != nil || ev.Redacts != fakeID("t") {
		t.Errorf("Parse(v11 redaction) = %v, %v, want Redacts from content", ev, err)
	}
}

func TestParseNeverPanics(t *testing.T) {
	valid := string(mustBuild(t, message(), "11").Raw)
	inputs := []string{"", " ", "null", "{", "}", "[", `{"a"`, `{"a":}`, `{"a":"\`, `{"a":"\u`, `{"a":"\ud800\`,
		`{"content":1}`, `{"hashes":{"sha256":1}}`, `{"signatures":{"a":{"b":{}}}}`, `{"type":"m.room.create","content":[]}`,
		"\xff\xfe", strings.Repeat(`{"a":`, 10000), strings.Repeat("[", 100000), valid[:len(valid)/2]}
	for i := 0; i < len(valid); i += 7 {
		inputs = append(inputs, valid[:i]+valid[i+1:])
	}
	for _, in := range inputs {
		if _, err := Parse([]byte(in), "11"); err != nil && strings.Contains(err.Error(), "unparseable") {
			t.Errorf("Parse(%.40q) hit the panic guard: %v", in, err)
		}
	}
}
