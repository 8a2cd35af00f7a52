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
// subscriptions and extensions; pos and timeout come in the query string
// only, as Synapse reads them (a pos or timeout in the body is ignored, as
// Synapse ignores it); set_presence in the query string or the body.
func (a *API) slidingSync(w http.ResponseWriter, r *http.Request, s *session) error {
	body, err := a.readObject(r)
	if err != nil {
		return err
	}
	req, err := inbox.ParseSlidingBody(body)
	if err != nil {
		return apierr.BadJSON(err.Error())
	}
	req.UserID, req.DeviceID = s.UserID, s.DeviceID
	q := r.URL.Query()
	req.Pos = q.Get("pos")
	var timeoutMs int64
	if t := q.Get("timeout"); t != "" {
		if timeoutMs, err = strconv.ParseInt(t, 10, 64); err != nil {
			return apierr.InvalidParam("Query parameter timeout must be an integer")
		}
	}
	if timeoutMs < 0 {
		return apierr.InvalidParam("Query parameter timeout must be a positive integer.")
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
	// Synapse's two answers: a pos not of the server's form is "Invalid
	// stream token" (M_UNKNOWN); one of that form it does not hold
	// (expired, from before a restart, another connection's) is
	// M_UNKNOWN_POS, on which clients start a new connection.
	if errors.Is(err, inbox.ErrMalformedPos) {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN", "Invalid stream token")
	}
	if errors.Is(err, inbox.ErrUnknownPos) {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN_POS", "Unknown position")
	}
	if err != nil {
		return err
	}
	writeSyncBody(w, out)
	return nil
}
