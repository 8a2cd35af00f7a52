package pdu

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyCreatesThenReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "nested", "signing.key")
	key, err := LoadOrCreateKey(path, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$`).Match(data) {
		t.Errorf("key file = %q, want Synapse's signing.key format", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode = %v, want 0700", fi.Mode().Perm())
	}
	again, err := LoadOrCreateKey(path, "example.org")
	if err != nil || again.KeyID != key.KeyID || !bytes.Equal(again.Private, key.Private) || again.ServerName != "example.org" {
		t.Errorf("LoadOrCreateKey(existing) = %+v, %v, want the same key", again, err)
	}
	if len(key.Public()) != 32 {
		t.Errorf("Public() is %d bytes, want 32", len(key.Public()))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".signing-key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadOrCreateKeyReadsSynapseKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	seed := "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
	if err := os.WriteFile(path, []byte("\ned25519 a_AbCd "+seed+"\ned25519 old oldseed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateKey(path, "domain")
	if err != nil {
		t.Fatal(err)
	}
	if key.KeyID != "ed25519:a_AbCd" || !key.Public().Equal(specKey(t).Public()) {
		t.Errorf("LoadOrCreateKey(synapse file) = %s %s, want ed25519:a_AbCd and the spec key",
			key.KeyID, base64.RawStdEncoding.EncodeToString(key.Public()))
	}
}

func TestLoadOrCreateKeyRejects(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"empty":      "",
		"wrong alg":  "rsa a_1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n",
		"bad id":     "ed25519 a:1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n",
		"short seed": "ed25519 a_1 YJDBA9Xnr2sVqXD9\n",
		"not base64": "ed25519 a_1 !!!!\n",
		"two fields": "ed25519 a_1\n",
	}
	for name, content := range tests {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if key, err := LoadOrCreateKey(path, "example.org"); err == nil {
			t.Errorf("LoadOrCreateKey(%s) = %+v, want an error", name, key)
		}
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "new.key"), "bad name!"); err == nil {
		t.Errorf("LoadOrCreateKey(bad server name) = nil error, want an error")
	}
}

func TestLoadOrCreateKeyConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	keys := make([]*SigningKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(path, "example.org")
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || keys[0] == nil || !bytes.Equal(k.Private, keys[0].Private) {
			t.Fatalf("concurrent LoadOrCreateKey returned different keys")
		}
	}
}
