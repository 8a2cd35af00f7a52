package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"maunium.net/go/mautrix/federation"
)

func testRouter(t testing.TB) http.Handler {
	me, err := NewOwn(context.Background(), newMemStore(), testKey("me.example", "m1", 1), 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ring := New(Config{Own: me, Store: newMemStore(), Fetch: &fakeFetcher{}})
	r := chi.NewRouter()
	ring.Mount(r)
	return r
}

func TestNotaryQueryOwnAndLimits(t *testing.T) {
	r := testRouter(t)
	for _, tc := range []struct {
		method, path, body string
		wantStatus, wantN  int
	}{
		{"POST", "/_matrix/key/v2/query", `{"server_keys":{"me.example":{}}}`, 200, 1},
		{"GET", "/_matrix/key/v2/query/me.example", "", 200, 1},
		{"GET", "/_matrix/key/v2/query/me%2Eexample", "", 200, 1}, // escaped, as a server name with a port may come (%3A)
		{"GET", "/_matrix/key/v2/query/unknown.example?minimum_valid_until_ts=5", "", 200, 0},
		{"GET", "/_matrix/key/v2/query/me.example?minimum_valid_until_ts=x", "", 400, -1},
		{"POST", "/_matrix/key/v2/query", `{"server_keys":[]}`, 400, -1},
		{"POST", "/_matrix/key/v2/query", `{"server_keys":{"a":{}}}` + strings.Repeat(" ", MaxQueryBytes), 413, -1},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if w.Code != tc.wantStatus {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.wantStatus)
			continue
		}
		if tc.wantN < 0 {
			continue
		}
		var q federation.QueryKeysResponse
		if err := json.Unmarshal(w.Body.Bytes(), &q); err != nil || len(q.ServerKeys) != tc.wantN {
			t.Errorf("%s %s = %s, want %d responses in a list", tc.method, tc.path, w.Body, tc.wantN)
			continue
		}
		for _, skr := range q.ServerKeys {
			if err := skr.VerifySelfSignature(); err != nil {
				t.Errorf("%s %s: self-signature: %v", tc.method, tc.path, err)
			}
		}
	}
}

// FuzzNotaryQuery posts arbitrary bodies to the notary: never a panic or a
// server error, and never an answer that is not a list.
func FuzzNotaryQuery(f *testing.F) {
	f.Add([]byte(`{"server_keys":{"me.example":{"ed25519:m1":{"minimum_valid_until_ts":1}}}}`))
	f.Add([]byte(`{"server_keys":{"":{}}}`))
	f.Add([]byte(`{"server_keys":{"x":{"k":{"minimum_valid_until_ts":"a"}}}}`))
	f.Add([]byte(`[]`))
	r := testRouter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("POST", "/_matrix/key/v2/query", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("POST %q = %d %s", body, w.Code, w.Body)
		}
		if w.Code == 200 && !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"server_keys":[`)) {
			t.Fatalf("POST %q = %s, want a server_keys list", body, w.Body)
		}
	})
}
