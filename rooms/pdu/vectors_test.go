package pdu

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// specKey is the signing key of the spec's cryptographic test vectors
// (appendices, "Cryptographic Test Vectors").
func specKey(t testing.TB) *SigningKey {
	t.Helper()
	seed, err := base64.RawStdEncoding.DecodeString("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
	if err != nil {
		t.Fatal(err)
	}
	return &SigningKey{ServerName: "domain", KeyID: "ed25519:1", Private: ed25519.NewKeyFromSeed(seed)}
}

func TestSpecJSONSigningVectors(t *testing.T) {
	key := specKey(t)
	tests := []struct{ in, want string }{
		{`{}`, "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"},
		{"{\n  \"one\": 1,\n  \"two\": \"Two\"\n}", "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"},
	}
	for _, tt := range tests {
		canon, err := canonicalize([]byte(tt.in))
		if err != nil {
			t.Fatalf("canonicalize(%s) = %v", tt.in, err)
		}
		got := base64.RawStdEncoding.EncodeToString(ed25519.Sign(key.Private, canon))
		if got != tt.want {
			t.Errorf("signature of %s = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestSpecEventSigningVectors checks the content hash and the signature over
// the redacted event against the spec's event signing examples. Those
// examples carry "origin" (and one an "event_id"), which only the room
// version 10 redaction algorithm keeps, so they are checked with v10 rules.
func TestSpecEventSigningVectors(t *testing.T) {
	key := specKey(t)
	tests := []struct {
		name, event, wantHash, wantSig string
	}{
		{
			name: "minimal",
			event: `{"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,
				"signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,
				"unsigned":{"age_ts":1000000}}`,
			wantHash: "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos",
			wantSig:  "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg",
		},
		{
			name: "redactable content",
			event: `{"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain",
				"origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain",
				"signatures":{},"unsigned":{"age_ts":1000000}}`,
			wantHash: "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g",
			wantSig:  "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canon, err := canonicalize([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			all, _ := objectMembers(canon)
			var members []member
			for _, m := range all {
				if m.key != "unsigned" && m.key != "hashes" && m.key != "signatures" {
					members = append(members, m)
				}
			}
			sum := sha256.Sum256(encodeObject(members))
			if got := base64.RawStdEncoding.EncodeToString(sum[:]); got != tt.wantHash {
				t.Errorf("content hash = %s, want %s", got, tt.wantHash)
			}
			members = append(members, member{"hashes", []byte(`{"sha256":"` + tt.wantHash + `"}`)})
			sig := ed25519.Sign(key.Private, signingBytes(members, "10"))
			if got := base64.RawStdEncoding.EncodeToString(sig); got != tt.wantSig {
				t.Errorf("signature = %s, want %s", got, tt.wantSig)
			}
		})
	}
}
