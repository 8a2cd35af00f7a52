package observe

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
)

type fakeStore struct {
	ping           error
	applied, known int
}

func (f fakeStore) Ping(context.Context) error { return f.ping }
func (f fakeStore) SchemaVersions(context.Context) (int, int, error) {
	return f.applied, f.known, nil
}

type fakeWriter bool

func (w fakeWriter) Running() bool { return bool(w) }

// TestReadyzFailures: each failed readiness check makes /readyz 503 and
// names the check; /healthz stays 200 whatever the store does.
func TestReadyzFailures(t *testing.T) {
	cases := []struct {
		name   string
		store  fakeStore
		writer fakeWriter
		status int
		failed string
	}{
		{"all well", fakeStore{applied: 32, known: 32}, true, 200, ""},
		{"store down", fakeStore{ping: errors.New("connection refused"), applied: 32, known: 32}, true, 503, "store"},
		{"migrations behind", fakeStore{applied: 31, known: 32}, true, 503, "migrations"},
		{"writer stopped", fakeStore{applied: 32, known: 32}, false, 503, "writer"},
	}
	for _, c := range cases {
		h := Health(c.store, c.writer, http.NotFoundHandler())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != c.status {
			t.Errorf("%s: readyz = %d %s, want %d", c.name, rec.Code, rec.Body, c.status)
		}
		if c.failed != "" && strings.Contains(rec.Body.String(), `"`+c.failed+`":"ok"`) {
			t.Errorf("%s: readyz body %s says %s is ok", c.name, rec.Body, c.failed)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != 200 {
			t.Errorf("%s: healthz = %d, want 200", c.name, rec.Code)
		}
	}
}

// TestSlowRequestLog: a slow request is logged once with its route
// pattern and the request ID that its answer carries, and a log line
// made with the request's context carries the same ID.
func TestSlowRequestLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(ContextHandler{slog.NewTextHandler(&buf, nil)})
	o := NewHTTP(HTTPConfig{Logger: log, SlowRequest: time.Nanosecond})
	r := chi.NewRouter()
	r.Get("/rooms/{id}", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "inside")
		w.WriteHeader(204)
	})
	rec := httptest.NewRecorder()
	o.Wrap(r).ServeHTTP(rec, httptest.NewRequest("GET", "/rooms/abc", nil))
	id := rec.Header().Get("X-Request-Id")
	out := buf.String()
	if id == "" || strings.Count(out, "request_id="+id) != 2 {
		t.Errorf("log = %q, want two lines with request_id=%s", out, id)
	}
	if !strings.Contains(out, `msg="slow request"`) || !strings.Contains(out, "route=/rooms/{id}") || !strings.Contains(out, "status=204") {
		t.Errorf("log = %q, want a slow request line with the route pattern and status", out)
	}
}
