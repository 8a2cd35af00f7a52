package pdu

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SigningKey is this server's ed25519 event and request signing key.
type SigningKey struct {
	ServerName string
	KeyID      string // "ed25519:<id>"
	Private    ed25519.PrivateKey
}

// Public returns the verify key that other servers fetch from
// /key/v2/server, or nil when the key is unset.
func (k *SigningKey) Public() ed25519.PublicKey {
	if k == nil || len(k.Private) != ed25519.PrivateKeySize {
		return nil
	}
	return k.Private.Public().(ed25519.PublicKey)
}

// LoadOrCreateKey reads the signing key at path, creating it with a fresh
// key when the file does not exist. The format is Synapse's signing.key
// ("ed25519 <id> <unpadded base64 seed>", first line wins) so a key can be
// moved between the two servers. A new file is mode 0600 in a 0700
// directory and is written under a temporary name then linked into place,
// so a concurrent starter never sees a partial key and never overwrites one.
func LoadOrCreateKey(path, serverName string) (*SigningKey, error) {
	if !ValidServerName(serverName) {
		return nil, fmt.Errorf("signing key: invalid server name %q", serverName)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, err := parseKeyFile(data, serverName)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

func parseKeyFile(data []byte, serverName string) (*SigningKey, error) {
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 || fields[0] != "ed25519" {
			return nil, errors.New(`want a line "ed25519 <id> <base64 seed>"`)
		}
		if !validKeyVersion(fields[1]) {
			return nil, fmt.Errorf("key id %q must be letters, digits and underscores", fields[1])
		}
		seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[2], "="))
		if err != nil {
			return nil, fmt.Errorf("seed is not base64: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
		}
		return &SigningKey{
			ServerName: serverName,
			KeyID:      "ed25519:" + fields[1],
			Private:    ed25519.NewKeyFromSeed(seed),
		}, nil
	}
	return nil, errors.New("file holds no key")
}

func validKeyVersion(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// createKeyFile writes a fresh key to path without ever replacing an
// existing file, and returns the contents that ended up at path.
func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// Synapse names keys "a_" plus four random characters; do the same.
	version := []byte("a_XXXX")
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	for i := range suffix {
		version[2+i] = letters[int(suffix[i])%len(letters)]
	}
	content := []byte(fmt.Sprintf("ed25519 %s %s\n", version, base64.RawStdEncoding.EncodeToString(seed)))

	tmp, err := os.CreateTemp(dir, ".signing-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path) // another process won the race; use its key
		}
		return nil, err
	}
	return content, nil
}
