package clientapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms"
)

// TestFailMapsWriterRefusals: the writer's backlog refusals reach the client
// as errors it knows to retry: 429 M_LIMIT_EXCEEDED for one user's backlog,
// 503 for a full queue, both with retry_after_ms and Retry-After.
func TestFailMapsWriterRefusals(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		err      error
		wantCode int
		wantErr  string
	}{
		{fmt.Errorf("%w: 128 waiting", rooms.ErrBusy), http.StatusTooManyRequests, "M_LIMIT_EXCEEDED"},
		{fmt.Errorf("%w: 4096 waiting", rooms.ErrOverloaded), http.StatusServiceUnavailable, "M_UNKNOWN"},
	} {
		w := httptest.NewRecorder()
		a.fail(w, httptest.NewRequest("PUT", "/x", nil), tc.err)
		body := gjson.Parse(w.Body.String())
		if w.Code != tc.wantCode || body.Get("errcode").String() != tc.wantErr ||
			body.Get("retry_after_ms").Int() <= 0 || w.Header().Get("Retry-After") == "" {
			t.Errorf("fail(%v) = %d %s Retry-After=%q, want %d %s with retry_after_ms and Retry-After",
				tc.err, w.Code, w.Body.String(), w.Header().Get("Retry-After"), tc.wantCode, tc.wantErr)
		}
	}
}
