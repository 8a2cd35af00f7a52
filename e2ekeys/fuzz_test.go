package e2ekeys

import (
	"encoding/json"
	"testing"
)

// FuzzKeyJSON feeds the helpers that read uploaded key JSON with arbitrary
// bytes: none may panic, and a key is always the same key as itself.
func FuzzKeyJSON(f *testing.F) {
	f.Add([]byte(`{"user_id":"@a:x","usage":["master"],"keys":{"ed25519:P":"P"},"signatures":{"@a:x":{"ed25519:P":"s"}}}`), "P")
	f.Add([]byte(`{"key":"P","signatures":{"ed25519:U":"s"}}`), "ed25519:P")
	f.Add([]byte(`null`), "")
	f.Add([]byte(`[1,2]`), "x")
	f.Add([]byte(`{"keys":{"ed25519:":""},"unsigned":null}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, pub string) {
		_ = sameKey(raw, raw)
		_ = hasPublicKey(string(raw), pub)
		_ = withDisplayName(string(raw), "name")
		_ = withUserSigningSigs(string(raw), "@v:x", `{"key":"`+pub+`","signatures":{"ed25519:U":"s"}}`)
		_ = userSigningRow(string(raw), pub, map[string]string{"ed25519:U": "s"})
		_ = checkCrossSigningKey(raw, "@a:x", "master")
		// Stored keys are JSON objects: Upload and UploadSigningKeys
		// refuse anything else.
		if _, ok := jsonObject(raw); ok {
			if !sameKey(raw, raw) {
				t.Errorf("sameKey(%s, itself) = false", raw)
			}
			merged := mergeSignatures(string(raw), "@a:x", map[string]string{"ed25519:K": "sig"})
			if !json.Valid([]byte(merged)) || !sameKey(raw, []byte(merged)) {
				t.Errorf("mergeSignatures(%s) = %s, want the same key with a signature", raw, merged)
			}
		}
	})
}
