package membership

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
)

// param returns a path parameter, unescaped. chi matches on the raw path
// when the request has one, so a parameter arrives as the sender escaped
// it: Synapse sends /make_join/%21room%3Aserver/%40user%3Aserver.
func param(r *http.Request, name string) string {
	raw := chi.URLParam(r, name)
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}
