package clientapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestVersionsAndWellKnown(t *testing.T) {
	a := &API{cfg: Config{PublicBaseURL: "https://matrix.example.org"}}
	w := httptest.NewRecorder()
	if err := a.versions(w, httptest.NewRequest("GET", "/_matrix/client/versions", nil)); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Versions []string       `json:"versions"`
		Unstable map[string]any `json:"unstable_features"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.Unstable == nil {
		t.Fatalf("%s %v", w.Body, err)
	}
	if got := strings.Join(v.Versions, ","); !strings.HasPrefix(got, "r0.6.1,v1.1,v1.2,") || !strings.HasSuffix(got, ",v1.11,v1.12") || len(v.Versions) != 13 {
		t.Errorf("versions = %s", got)
	}

	w = httptest.NewRecorder()
	if err := a.wellKnown(w, httptest.NewRequest("GET", "/.well-known/matrix/client", nil)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Body.String(), `"base_url":"https://matrix.example.org"`) {
		t.Errorf("well-known = %s", w.Body)
	}
}
