package observe

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
)

// BenchmarkObserveWrap is the cost Wrap adds to one routed request (a
// chi router with a parameterised route), against the bare router.
func BenchmarkObserveWrap(b *testing.B) {
	r := chi.NewRouter()
	r.Put("/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	o := NewHTTP(HTTPConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := httptest.NewRequest("PUT", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1", nil)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", r}, {"observed", o.Wrap(r)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := httptest.NewRecorder()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
