package clientapi

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-im/parley/apierr"
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

func TestSetPusherValidation(t *testing.T) {
	a := &API{cfg: Config{MaxBodyBytes: 1 << 20}}
	for body, code := range map[string]string{
		`{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"https://p/x"}}`: "",
		`{"kind":null,"app_id":"a","pushkey":"k"}`: "",
		`{"kind":"http","app_id":"a"}`:             "M_MISSING_PARAM",
		`{"kind":"sms","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{}}`:  "M_INVALID_PARAM",
		`{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{}}`: "M_MISSING_PARAM",
		`{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":[]}`: "M_BAD_JSON",
		`not json`: "M_NOT_JSON",
	} {
		w := httptest.NewRecorder()
		err := a.setPusher(w, httptest.NewRequest("POST", "/pushers/set", strings.NewReader(body)), &session{UserID: "@a:x"})
		var ae *apierr.Error
		switch {
		case code == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case code != "" && (!errors.As(err, &ae) || ae.Code != code):
			t.Errorf("%s: %v, want %s", body, err, code)
		}
	}
}
