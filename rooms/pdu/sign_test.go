package pdu

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestVerifySignatureFailures(t *testing.T) {
	ev := mustBuild(t, message(), "11")
	pub := testKey("example.org").Public()
	tests := []struct {
		name, server, keyID string
		pub                 ed25519.PublicKey
	}{
		{"other server's key", "example.org", "ed25519:test", testKey("other.org").Public()},
		{"unknown server", "other.org", "ed25519:test", pub},
		{"unknown key ID", "example.org", "ed25519:nope", pub},
		{"short public key", "example.org", "ed25519:test", pub[:31]},
	}
	for _, tt := range tests {
		if err := ev.VerifySignature("11", tt.server, tt.keyID, tt.pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifySignature(%s) = %v, want ErrBadSignature", tt.name, err)
		}
	}
	garbled := edit(t, ev.Raw, func(m map[string]json.RawMessage) {
		m["signatures"] = json.RawMessage(`{"example.org":{"ed25519:test":"not base64!"}}`)
	})
	g, err := Parse(garbled, "11")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.VerifySignature("11", "example.org", "ed25519:test", pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifySignature(garbled) = %v, want ErrBadSignature", err)
	}
	// A signature made under v11 rules does not verify under v10 rules
	// when the redacted forms differ (v11 keeps power levels' invite).
	p := message()
	p.Type, p.StateKey, p.Content = "m.room.power_levels", strPtr(""), json.RawMessage(`{"invite":50}`)
	pl := mustBuild(t, p, "11")
	if err := pl.VerifySignature("10", "example.org", "ed25519:test", pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifySignature(v11 event checked as v10) = %v, want ErrBadSignature", err)
	}
}

func TestAddSignature(t *testing.T) {
	ev := mustBuild(t, message(), "11")
	other := testKey("b.example")
	cosigned, err := ev.AddSignature("11", other)
	if err != nil {
		t.Fatal(err)
	}
	if cosigned.ID != ev.ID {
		t.Errorf("AddSignature changed the ID from %s to %s", ev.ID, cosigned.ID)
	}
	for _, k := range []*SigningKey{testKey("example.org"), other} {
		if err := cosigned.VerifySignature("11", k.ServerName, k.KeyID, k.Public()); err != nil {
			t.Errorf("VerifySignature(%s) after AddSignature = %v, want nil", k.ServerName, err)
		}
	}
	// Re-signing with the same key replaces, a second key of one server adds.
	again, _ := cosigned.AddSignature("11", other)
	if string(again.Raw) != string(cosigned.Raw) {
		t.Errorf("AddSignature twice with one key = %s, want %s", again.Raw, cosigned.Raw)
	}
	second := &SigningKey{ServerName: "example.org", KeyID: "ed25519:second", Private: other.Private}
	both, _ := cosigned.AddSignature("11", second)
	if got := both.SignatureKeyIDs("example.org"); !reflect.DeepEqual(got, []string{"ed25519:second", "ed25519:test"}) {
		t.Errorf("SignatureKeyIDs = %v, want both keys", got)
	}
	if _, err := Parse(both.Raw, "11"); err != nil {
		t.Errorf("Parse(co-signed) = %v, want nil", err)
	}
	if _, err := ev.AddSignature("11", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddSignature(nil key) = %v, want ErrInvalid", err)
	}
}

func TestRequiredSigners(t *testing.T) {
	tests := []struct {
		typ, content string
		want         []string
	}{
		{"m.room.message", `{"body":"x"}`, []string{"example.org"}},
		{"m.room.member", `{"membership":"join"}`, []string{"example.org"}},
		{"m.room.member", `{"membership":"join","join_authorised_via_users_server":"@mod:b.example"}`, []string{"example.org", "b.example"}},
		{"m.room.member", `{"membership":"join","join_authorised_via_users_server":"@mod:example.org"}`, []string{"example.org"}},
		{"m.room.member", `{"membership":"invite","third_party_invite":{"signed":{}}}`, nil},
		{"m.room.message", `{"join_authorised_via_users_server":"@mod:b.example"}`, []string{"example.org"}},
	}
	for _, tt := range tests {
		ev := &Event{Type: tt.typ, Sender: "@alice:example.org", Content: json.RawMessage(tt.content)}
		if got := ev.RequiredSigners(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RequiredSigners(%s %s) = %v, want %v", tt.typ, tt.content, got, tt.want)
		}
	}
}
