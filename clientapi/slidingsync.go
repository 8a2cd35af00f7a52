package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
)

// slidingSyncPath is where Synapse serves simplified sliding sync
// (MSC4186) and where Element X and matrix-rust-sdk look for it.
const slidingSyncPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// slidingSync answers POST slidingSyncPath: the body holds the lists,
// subscriptions and extensions; pos, timeout and set_presence come in the
// query string (as Synapse reads them) or in the body.
func (a *API) slidingSync(w http.ResponseWriter, r *http.Request, s *session) error {
	body, err := a.readObject(r)
	if err != nil {
		return err
	}
	req, bodyTimeout, err := inbox.ParseSlidingBody(body)
	if err != nil {
		return apierr.BadJSON(err.Error())
	}
	req.UserID, req.DeviceID = s.UserID, s.DeviceID
	q := r.URL.Query()
	if p := q.Get("pos"); p != "" {
		req.Pos = p
	}
	var timeoutMs int64
	if bodyTimeout != nil {
		timeoutMs = *bodyTimeout
	}
	if t := q.Get("timeout"); t != "" {
		if timeoutMs, err = strconv.ParseInt(t, 10, 64); err != nil {
			return apierr.InvalidParam("timeout must be a non-negative integer")
		}
	}
	if timeoutMs < 0 {
		return apierr.InvalidParam("timeout must be a non-negative integer")
	}
	req.Timeout = min(time.Duration(timeoutMs)*time.Millisecond, a.cfg.MaxSyncTimeout)
	if sp := q.Get("set_presence"); sp != "" {
		req.SetPresence = sp
	}
	switch req.SetPresence {
	case "", "online", "offline", "unavailable":
	default:
		return apierr.InvalidParam("set_presence must be online, offline or unavailable")
	}
	req.Rules = func(ctx context.Context, initial bool) (map[string]bool, json.RawMessage, error) {
		return a.pushRules.ForSync(ctx, s.UserID, initial)
	}
	if req.Pos == "" {
		// A new connection reads like an initial sync: the same limits.
		release, err := a.admitFullSync(r.Context(), s.UserID)
		if err != nil {
			return err
		}
		defer release()
	}
	out, err := a.sliding.Sync(r.Context(), req)
	if errors.Is(err, inbox.ErrUnknownPos) {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN_POS", "Unknown or expired pos: start a new connection")
	}
	if err != nil {
		return err
	}
	writeSyncBody(w, out)
	return nil
}
