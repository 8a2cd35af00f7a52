package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Store is what the readiness check asks of the store; *storage.Store
// implements it.
type Store interface {
	Ping(ctx context.Context) error
	SchemaVersions(ctx context.Context) (applied, known int, err error)
}

// Writer is the room writer; *rooms.Service implements it.
type Writer interface {
	Running() bool
}

// readyTimeout bounds the store's answer to a readiness check: a store
// slower than this is not ready for clients either.
const readyTimeout = 2 * time.Second

// Health serves /healthz and /readyz in front of next, without
// authentication: load balancers and orchestrators call them.
//
//   - /healthz answers 200 while the process serves HTTP; it touches
//     nothing else, so a slow database never makes it fail.
//   - /readyz answers 200 when the store answers a query, every schema
//     migration this binary knows is applied and the room writer runs;
//     otherwise 503, with the failing checks in the body.
func Health(store Store, writer Writer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			writeHealth(w, http.StatusOK, map[string]any{"status": "ok"})
		case "/readyz":
			checks, ok := ready(r.Context(), store, writer)
			status, word := http.StatusOK, "ok"
			if !ok {
				status, word = http.StatusServiceUnavailable, "unavailable"
			}
			writeHealth(w, status, map[string]any{"status": word, "checks": checks})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func ready(ctx context.Context, store Store, writer Writer) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	checks := map[string]string{"store": "ok", "migrations": "ok", "writer": "ok"}
	ok := true
	if err := store.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	if applied, known, err := store.SchemaVersions(ctx); err != nil {
		checks["migrations"], ok = err.Error(), false
	} else if applied < known {
		checks["migrations"], ok = fmt.Sprintf("schema %d applied, %d known", applied, known), false
	}
	if !writer.Running() {
		checks["writer"], ok = "the room writer has stopped", false
	}
	return checks, ok
}

func writeHealth(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
