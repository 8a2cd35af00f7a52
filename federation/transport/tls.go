package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Self-signed certificate files, in the data directory, made when no
// certificate is configured.
const (
	SelfSignedCert = "federation-selfsigned.crt"
	SelfSignedKey  = "federation-selfsigned.key"
)

// LoadTLS returns the federation listener's TLS config. With certFile and
// keyFile set it loads them; with both empty it loads, or makes once, a
// self-signed pair in dataDir for host and reports generated=true, which
// the caller must log as fit for tests only: other servers that verify
// certificates (every production one) will refuse it.
func LoadTLS(certFile, keyFile, dataDir, host string) (cfg *tls.Config, selfSigned bool, err error) {
	if (certFile == "") != (keyFile == "") {
		return nil, false, errors.New("federation TLS: set both the certificate and the key, or neither")
	}
	if certFile == "" {
		certFile, keyFile = filepath.Join(dataDir, SelfSignedCert), filepath.Join(dataDir, SelfSignedKey)
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			if err := writeSelfSigned(certFile, keyFile, host); err != nil {
				return nil, true, fmt.Errorf("federation TLS: %w", err)
			}
		}
		selfSigned = true
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, selfSigned, fmt.Errorf("federation TLS: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, selfSigned, nil
}

// writeSelfSigned writes an ECDSA P-256 certificate for host, valid ten
// years (a test certificate should not expire under a long-lived test
// deployment), and its key (mode 0600).
func writeSelfSigned(certFile, keyFile, host string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"Parley self-signed (tests only)"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
