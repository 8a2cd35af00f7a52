package pdu

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// testKey returns a deterministic signing key for server, so test events
// and their IDs are stable between runs.
func testKey(server string) *SigningKey {
	seed := sha256.Sum256([]byte("parley test key for " + server))
	return &SigningKey{ServerName: server, KeyID: "ed25519:test", Private: ed25519.NewKeyFromSeed(seed[:])}
}

// fakeID returns a well-formed event ID derived from s.
func fakeID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "$" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func strPtr(s string) *string { return &s }

// message is a typical m.room.message proto.
func message() Proto {
	return Proto{
		RoomID:         "!room:example.org",
		Sender:         "@alice:example.org",
		Type:           "m.room.message",
		Content:        json.RawMessage(`{"msgtype":"m.text","body":"Hello, world! Ünïcödé ✓"}`),
		PrevEvents:     []string{fakeID("prev")},
		AuthEvents:     []string{fakeID("create"), fakeID("pl"), fakeID("member")},
		Depth:          42,
		OriginServerTS: 1700000000000,
	}
}

func mustBuild(t testing.TB, p Proto, roomVersion string) *Event {
	t.Helper()
	ev, err := Build(p, roomVersion, testKey(Domain(p.Sender)))
	if err != nil {
		t.Fatalf("Build(%s) = %v", p.Type, err)
	}
	return ev
}

// forge hashes and signs an arbitrary top-level object (key → raw JSON) as
// a server would, to produce events Build refuses to make (legacy keys,
// odd shapes) that Parse must still handle.
func forge(t testing.TB, fields map[string]string, roomVersion string, key *SigningKey) []byte {
	t.Helper()
	var members []member
	for k, v := range fields {
		canon, err := canonicalize([]byte(v))
		if err != nil {
			t.Fatalf("forge: field %s: %v", k, err)
		}
		members = append(members, member{k, canon})
	}
	sum := sha256.Sum256(encodeObject(members))
	members = append(members, member{"hashes", []byte(`{"sha256":"` + base64.RawStdEncoding.EncodeToString(sum[:]) + `"}`)})
	sig := ed25519.Sign(key.Private, signingBytes(members, roomVersion))
	members = append(members, member{"signatures", encodeSignatures(key.ServerName, key.KeyID, sig)})
	return encodeObject(members)
}

// baseFields are the fields of a valid message event, for forge.
func baseFields() map[string]string {
	return map[string]string{
		"room_id":          `"!room:example.org"`,
		"sender":           `"@alice:example.org"`,
		"type":             `"m.room.message"`,
		"content":          `{"body":"hi","msgtype":"m.text"}`,
		"prev_events":      `["` + fakeID("prev") + `"]`,
		"auth_events":      `["` + fakeID("create") + `"]`,
		"depth":            `5`,
		"origin_server_ts": `1700000000000`,
	}
}

// edit decodes raw, applies fn to its top-level keys and re-encodes it,
// without fixing hashes or signatures.
func edit(t testing.TB, raw []byte, fn func(m map[string]json.RawMessage)) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func quote(s string) json.RawMessage {
	return appendString(nil, s)
}

func long(n int) string { return strings.Repeat("x", n) }
