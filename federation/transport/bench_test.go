package transport

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkAuthenticate is the X-Matrix check of one inbound /send with a
// 10-PDU body and the key already cached: the per-request cost every
// inbound transaction pays.
func BenchmarkAuthenticate(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a := NewAuthenticator(testDest, staticKeys{"origin.example", "ed25519:k1", priv.Public().(ed25519.PublicKey)}, 0)
	var pdus []string
	for i := 0; i < 10; i++ {
		pdus = append(pdus, fmt.Sprintf(`{"type":"m.room.message","content":{"body":"message %d %s"},"depth":%d}`, i, strings.Repeat("x", 200), i))
	}
	body := `{"origin":"origin.example","pdus":[` + strings.Join(pdus, ",") + `]}`
	uri := "/_matrix/federation/v1/send/txn1"
	sig := sign(b, priv, "PUT", uri, "origin.example", testDest, body)
	header := fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="%s"`, testDest, sig)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest("PUT", uri, strings.NewReader(body))
		req.Header.Set("Authorization", header)
		if _, err := a.Authenticate(req); err != nil {
			b.Fatal(err)
		}
	}
}
