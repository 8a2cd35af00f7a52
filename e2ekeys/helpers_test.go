package e2ekeys

import (
	"encoding/json"
	"testing"
)

func TestSameKey(t *testing.T) {
	a := `{"user_id":"@a:x","keys":{"ed25519:D":"k"},"signatures":{"@a:x":{"ed25519:D":"s1"}}}`
	b := `{ "keys": {"ed25519:D": "k"}, "user_id": "@a:x", "unsigned": {"device_display_name": "p"} }`
	if !sameKey([]byte(a), []byte(b)) {
		t.Error("keys differing only in signatures and unsigned must be the same")
	}
	if sameKey([]byte(a), []byte(`{"user_id":"@a:x","keys":{"ed25519:D":"other"}}`)) {
		t.Error("different keys reported the same")
	}
	if sameKey(nil, []byte(b)) || sameKey([]byte(`[1]`), []byte(`[1]`)) {
		t.Error("non-objects are never the same key")
	}
}

func TestMergeSignatures(t *testing.T) {
	stored := `{"keys":{"ed25519:D":"k"},"signatures":{"@a:x":{"ed25519:D":"self"}}}`
	got := mergeSignatures(stored, "@a:x", map[string]string{"ed25519:SSK": "cross"})
	var k struct {
		Keys       map[string]string            `json:"keys"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(got), &k); err != nil {
		t.Fatal(err)
	}
	if k.Keys["ed25519:D"] != "k" || k.Signatures["@a:x"]["ed25519:D"] != "self" || k.Signatures["@a:x"]["ed25519:SSK"] != "cross" {
		t.Errorf("merged = %s", got)
	}
}

func TestUserSigningSignatures(t *testing.T) {
	master := `{"user_id":"@b:x","usage":["master"],"keys":{"ed25519:PUB":"PUB"}}`
	if !hasPublicKey(master, "PUB") || hasPublicKey(master, "OTHER") {
		t.Fatal("hasPublicKey")
	}
	row := userSigningRow("", "PUB", map[string]string{"ed25519:USK": "sig"})
	got := withUserSigningSigs(master, "@a:x", row)
	var k struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(got, &k); err != nil || k.Signatures["@a:x"]["ed25519:USK"] != "sig" {
		t.Errorf("with signatures = %s (%v)", got, err)
	}
	// A row about an older master key is not applied to the new one.
	newMaster := `{"user_id":"@b:x","usage":["master"],"keys":{"ed25519:NEW":"NEW"}}`
	if got := withUserSigningSigs(newMaster, "@a:x", row); string(got) != newMaster {
		t.Errorf("stale row applied: %s", got)
	}
	// A row for a new key replaces the old key's signatures.
	row2 := userSigningRow(row, "NEW", map[string]string{"ed25519:USK": "sig2"})
	if got := withUserSigningSigs(master, "@a:x", row2); string(got) != master {
		t.Errorf("old key got new key's signatures: %s", got)
	}
}

func TestWithDisplayName(t *testing.T) {
	got := withDisplayName(`{"device_id":"D","unsigned":{"x":1}}`, "Phone")
	var k struct {
		DeviceID string         `json:"device_id"`
		Unsigned map[string]any `json:"unsigned"`
	}
	if err := json.Unmarshal(got, &k); err != nil || k.DeviceID != "D" || k.Unsigned["device_display_name"] != "Phone" || k.Unsigned["x"] != 1.0 {
		t.Errorf("got %s", got)
	}
	if got := withDisplayName(`{"device_id":"D"}`, ""); string(got) != `{"device_id":"D"}` {
		t.Errorf("no name must leave the keys alone: %s", got)
	}
}

func TestCheckCrossSigningKey(t *testing.T) {
	ok := `{"user_id":"@a:x","usage":["self_signing"],"keys":{"ed25519:K":"K"}}`
	if err := checkCrossSigningKey(json.RawMessage(ok), "@a:x", "self_signing"); err != nil {
		t.Error(err)
	}
	for _, c := range []struct{ raw, user, usage string }{
		{ok, "@b:x", "self_signing"},
		{ok, "@a:x", "master"},
		{`{"user_id":"@a:x","usage":["master"],"keys":{}}`, "@a:x", "master"},
		{`[]`, "@a:x", "master"},
		{`{"user_id":"@a:x","usage":"master","keys":{"ed25519:K":"K"}}`, "@a:x", "master"},
	} {
		if checkCrossSigningKey(json.RawMessage(c.raw), c.user, c.usage) == nil {
			t.Errorf("accepted %s as %s of %s", c.raw, c.usage, c.user)
		}
	}
}
