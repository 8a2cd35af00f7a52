package transport

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
)

// KeyEndpoints mounts the key server routes; *keys.Keyring implements it.
type KeyEndpoints interface {
	Mount(r chi.Router)
}

// RouterConfig configures the federation router.
type RouterConfig struct {
	Keys KeyEndpoints
	Auth *Authenticator
	// Version is served at /_matrix/federation/v1/version.
	Name, Version string
	// WellKnownServer, when set, is served as /.well-known/matrix/server's
	// "m.server". Zero value means the route answers 404.
	WellKnownServer string
}

// Router is the federation listener's handler. Routes that need a signed
// request go on Authed (federation/inbound mounts /send and the rest there);
// Authed handlers read the caller with Origin(r.Context()).
type Router struct {
	chi.Router
	// Authed registers routes on Router behind the X-Matrix check.
	Authed chi.Router
}

// NewRouter builds the federation router with the unauthenticated routes
// (keys, version, .well-known) in place.
func NewRouter(cfg RouterConfig) *Router {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		apierr.Write(w, apierr.Unrecognized("Unrecognized request"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Method not allowed"))
	})
	cfg.Keys.Mount(r)
	r.Get("/_matrix/federation/v1/version", func(w http.ResponseWriter, _ *http.Request) {
		apierr.WriteJSON(w, http.StatusOK, map[string]any{"server": map[string]string{"name": cfg.Name, "version": cfg.Version}})
	})
	r.Get("/.well-known/matrix/server", WellKnownHandler(cfg.WellKnownServer))
	return &Router{Router: r, Authed: r.With(cfg.Auth.Middleware)}
}

// WellKnownHandler serves /.well-known/matrix/server for target, or 404
// M_NOT_FOUND when target is empty. The client listener serves it too:
// remote servers ask https://<server name>/.well-known on port 443, which
// is usually the client-facing proxy.
func WellKnownHandler(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if target == "" {
			apierr.Write(w, apierr.NotFound("No .well-known server delegation configured"))
			return
		}
		w.Header().Set("Cache-Control", "max-age=86400")
		apierr.WriteJSON(w, http.StatusOK, map[string]string{"m.server": target})
	}
}
