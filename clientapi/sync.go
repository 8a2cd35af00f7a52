package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/storage"
)

func (a *API) sync(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	req := inbox.Request{UserID: s.UserID, DeviceID: s.DeviceID, FullState: q.Get("full_state") == "true"}
	if since := q.Get("since"); since != "" {
		t, err := inbox.ParseToken(since)
		if err != nil {
			return apierr.InvalidParam("Invalid since token")
		}
		req.Since = &t
	}
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return apierr.InvalidParam("timeout must be a non-negative integer")
		}
		req.Timeout = min(time.Duration(ms)*time.Millisecond, a.cfg.MaxSyncTimeout)
	}
	switch sp := q.Get("set_presence"); sp {
	case "", "online", "offline", "unavailable":
		req.SetPresence = sp
	default:
		return apierr.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if f := q.Get("filter"); f != "" {
		filter, err := a.loadFilter(r, s.UserID, f)
		if err != nil {
			return err
		}
		req.Filter = filter
	}
	// Push rules shape the unread counts (muted rooms) and an initial sync
	// carries the ruleset as m.push_rules account data, as clients expect.
	// They are loaded only when a response is built.
	// With a warm cache this costs no query.
	req.Rules = func(ctx context.Context, initial bool) (map[string]bool, json.RawMessage, error) {
		return a.pushRules.ForSync(ctx, s.UserID, initial)
	}
	if req.Since == nil || req.FullState {
		release, err := a.admitFullSync(r.Context(), s.UserID)
		if err != nil {
			return err
		}
		defer release()
	}
	body, err := a.syncer.Sync(r.Context(), req)
	if err != nil {
		return err
	}
	defer a.syncer.Release(body) // written (copied out) by then
	return writeRaw(w, body)
}

// loadFilter accepts an inline JSON filter or the ID of a stored one. The
// result is shared through a.filters and must not be changed.
func (a *API) loadFilter(r *http.Request, userID, f string) (*inbox.Filter, error) {
	key := filterKey{filter: f}
	if !strings.HasPrefix(strings.TrimSpace(f), "{") {
		key.user = userID
	}
	if cached := a.filters.get(key); cached != nil {
		return cached, nil
	}
	raw := []byte(f)
	if key.user != "" {
		body, err := a.store.GetFilter(r.Context(), userID, f)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, apierr.NotFound("Unknown filter " + f)
		}
		if err != nil {
			return nil, err
		}
		raw = []byte(body)
	}
	filter, err := inbox.ParseFilter(raw)
	if err != nil {
		return nil, apierr.BadJSON("Invalid filter: " + err.Error())
	}
	a.filters.put(key, filter)
	return filter, nil
}

func (a *API) putFilter(w http.ResponseWriter, r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("Cannot create filters for other users")
	}
	body, err := a.readObject(r)
	if err != nil {
		return err
	}
	if _, err := inbox.ParseFilter(body); err != nil {
		return apierr.BadJSON("Invalid filter: " + err.Error())
	}
	id, err := a.store.PutFilter(r.Context(), s.UserID, string(body))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"filter_id": id})
}

func (a *API) getFilter(w http.ResponseWriter, r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("Cannot read filters of other users")
	}
	body, err := a.store.GetFilter(r.Context(), s.UserID, param(r, "filterId"))
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Unknown filter")
	}
	if err != nil {
		return err
	}
	return writeRaw(w, []byte(body))
}
