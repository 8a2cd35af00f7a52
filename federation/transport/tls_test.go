package transport

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadTLS(t *testing.T) {
	dir := t.TempDir()
	cfg, self, err := LoadTLS("", "", dir, "127.0.0.2")
	if err != nil || !self || len(cfg.Certificates) != 1 {
		t.Fatalf("LoadTLS(neither) = %v, self-signed %v, %v; want a self-signed pair", cfg, self, err)
	}
	first := cfg.Certificates[0].Certificate[0]
	if fi, err := os.Stat(filepath.Join(dir, SelfSignedKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("self-signed key file: %v, %v; want mode 0600", fi, err)
	}
	// A restart reuses the pair rather than making a new one.
	cfg, _, err = LoadTLS("", "", dir, "127.0.0.2")
	if err != nil || !bytes.Equal(cfg.Certificates[0].Certificate[0], first) {
		t.Errorf("LoadTLS again = %v; want the same certificate", err)
	}
	// Configured files are used as given, and not reported self-signed.
	cert, key := filepath.Join(dir, SelfSignedCert), filepath.Join(dir, SelfSignedKey)
	cfg, self, err = LoadTLS(cert, key, t.TempDir(), "ignored")
	if err != nil || self || !bytes.Equal(cfg.Certificates[0].Certificate[0], first) {
		t.Errorf("LoadTLS(files) = self-signed %v, %v; want those files' certificate", self, err)
	}
	if _, _, err := LoadTLS(cert, "", dir, "x"); err == nil {
		t.Errorf("LoadTLS(cert only) = nil error, want one")
	}
	if _, _, err := LoadTLS(filepath.Join(dir, "missing.crt"), key, dir, "x"); err == nil {
		t.Errorf("LoadTLS(missing file) = nil error, want one")
	}
}
