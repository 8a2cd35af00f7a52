package membership

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestParamUnescapes: IDs in the path arrive unescaped whether the sender
// escaped them (Synapse) or not (mautrix's client).
func TestParamUnescapes(t *testing.T) {
	for _, tc := range []struct{ path, room, second string }{
		{"/make_join/%21abc%3Aexample.org%3A8448/%40bob%3Aexample.org%3A8448", "!abc:example.org:8448", "@bob:example.org:8448"},
		{"/make_join/!abc:example.org/@bob:example.org", "!abc:example.org", "@bob:example.org"},
		{"/make_join/%21a%2Fb%3Ax/%40b%3Ax", "!a/b:x", "@b:x"},
		{"/invite/%21abc%3Aexample.org/%24Gu3B-tzs_w", "!abc:example.org", "$Gu3B-tzs_w"},
		{"/invite/!abc:example.org/$Gu3B-tzs_w", "!abc:example.org", "$Gu3B-tzs_w"},
	} {
		var room, second string
		r := chi.NewRouter()
		r.Get("/make_join/{roomId}/{userId}", func(w http.ResponseWriter, req *http.Request) {
			room, second = param(req, "roomId"), param(req, "userId")
		})
		r.Get("/invite/{roomId}/{eventId}", func(w http.ResponseWriter, req *http.Request) {
			room, second = param(req, "roomId"), param(req, "eventId")
		})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
		if room != tc.room || second != tc.second {
			t.Errorf("%s: got %q %q, want %q %q", tc.path, room, second, tc.room, tc.second)
		}
	}
}
