package clientapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/federation/outbound"
)

// TestFailMapsDestinationQueueFull: a sendToDevice whose recipients' server
// already has the most durable EDUs waiting is refused with an error clients
// retry (429 M_LIMIT_EXCEEDED with retry_after_ms), not a 500.
func TestFailMapsDestinationQueueFull(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := fmt.Errorf("to-device for far.example: %w", fmt.Errorf("%w: far.example has 100000 EDUs waiting", outbound.ErrQueueFull))
	w := httptest.NewRecorder()
	a.fail(w, httptest.NewRequest("PUT", "/_matrix/client/v3/sendToDevice/m.x/t1", nil), err)
	body := gjson.Parse(w.Body.String())
	if w.Code != http.StatusTooManyRequests || body.Get("errcode").String() != "M_LIMIT_EXCEEDED" ||
		body.Get("retry_after_ms").Int() <= 0 || w.Header().Get("Retry-After") == "" {
		t.Errorf("fail(queue full) = %d %s Retry-After=%q, want 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After",
			w.Code, w.Body.String(), w.Header().Get("Retry-After"))
	}
}
