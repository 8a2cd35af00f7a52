package clientapi

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestTokenLookupWritesLastSeenRarely: every cached token is looked up
// again when its cache entry expires, and each lookup also wrote the
// device's last_seen, a write per active device per minute on the request
// path. A lookup within lastSeenGranularity of the last write, from the
// same address, now only reads; a new address is written at once.
func TestTokenLookupWritesLastSeenRarely(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "", filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, storage.User{UserID: "@a:hs", CreatedTS: 1}); err != nil {
		t.Fatal(err)
	}
	dev, token := newDeviceRow("@a:hs", "D", "", "192.0.2.1")
	if err := st.CreateDevice(ctx, *dev); err != nil {
		t.Fatal(err)
	}
	a := &API{store: st, tokens: newTokenCache(10)}
	a.tokens.ttl = 0 // every request looks the token up, as one does after the cache's TTL
	cases := []struct {
		name       string
		addr       string
		wantWrites int64
	}{
		{"same address, just seen", "192.0.2.1:5000", 0},
		{"same address again", "192.0.2.1:5001", 0},
		{"a new address", "198.51.100.7:5000", 1},
		{"the new address again", "198.51.100.7:5000", 0},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/_matrix/client/v3/sync", nil)
		r.RemoteAddr = c.addr
		r.Header.Set("Authorization", "Bearer "+token)
		q0 := st.Queries()
		if _, err := a.authenticate(r); err != nil {
			t.Fatalf("%s: authenticate: %v", c.name, err)
		}
		// DeviceByToken and GetUser read; anything more is the write.
		if got := st.Queries() - q0 - 2; got != c.wantWrites {
			t.Errorf("%s: statements beyond the two reads = %d, want %d", c.name, got, c.wantWrites)
		}
	}
	d, err := st.GetDevice(ctx, "@a:hs", "D")
	if err != nil || d.LastSeenIP != "198.51.100.7" {
		t.Errorf("last seen address = %q (%v), want 198.51.100.7", d.LastSeenIP, err)
	}
}
