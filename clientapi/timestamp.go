package clientapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/storage"
)

// tsEventReader is the store read timestamp_to_event needs;
// *storage.Store implements it; New passes Deps.Store.
type tsEventReader interface {
	EventsByTS(ctx context.Context, roomID string, ts, afterPos int64, forwards bool, limit int) ([]storage.Event, error)
}

// Bounds of one timestamp_to_event lookup: events the caller may not see
// are skipped, at most tsLookupPages pages of tsLookupPage events, so a
// long hidden stretch costs a bounded read and answers 404.
const (
	tsLookupPage  = 50
	tsLookupPages = 4
)

// timestampToEvent serves GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event:
// the event closest to ts in direction dir that the caller may see
// (rooms.ReadAccess, history visibility).
func (a *API) timestampToEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if q.Get("ts") == "" {
		return apierr.MissingParam("ts is required")
	}
	if err != nil || ts < 0 {
		return apierr.InvalidParam("ts must be a non-negative integer (ms)")
	}
	dir := q.Get("dir")
	if dir != "f" && dir != "b" {
		return apierr.InvalidParam("dir must be f or b")
	}
	roomID := param(r, "roomId")
	v, err := a.roomAccess(r, s, roomID)
	if err != nil {
		return err
	}
	st := a.tsEvents
	if st == nil {
		return apierr.Unrecognized("Not supported by this server's store")
	}
	forwards := dir == "f"
	cursorTS, cursorPos := ts, int64(0)
	if !forwards {
		cursorPos = 1 << 62
	}
	for range tsLookupPages {
		page, err := st.EventsByTS(r.Context(), roomID, cursorTS, cursorPos, forwards, tsLookupPage)
		if err != nil {
			return err
		}
		for i := range page {
			if v.CanSee(&page[i]) {
				return writeJSON(w, map[string]any{"event_id": page[i].EventID, "origin_server_ts": page[i].OriginTS})
			}
		}
		if len(page) < tsLookupPage {
			break
		}
		last := page[len(page)-1]
		cursorTS, cursorPos = last.OriginTS, last.Pos
	}
	return apierr.NotFound("No event found in that direction")
}
