package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/storage"
)

func (a *API) sync(w http.ResponseWriter, r *http.Request, s *session) error {
	q := parseSyncQuery(r.URL.RawQuery)
	req := inbox.Request{UserID: s.UserID, DeviceID: s.DeviceID, FullState: q.fullState == "true"}
	if since := q.since; since != "" {
		t, current, err := a.syncToken(since)
		if err != nil {
			return errBadToken("since")
		}
		if current { // a stale one (before a restore) syncs afresh, admitted below as initial
			req.Since = &t
		}
	}
	if t := q.timeout; t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return apierr.InvalidParam("timeout must be a non-negative integer")
		}
		req.Timeout = min(time.Duration(ms)*time.Millisecond, a.cfg.MaxSyncTimeout)
	}
	switch sp := q.setPresence; sp {
	case "", "online", "offline", "unavailable":
		req.SetPresence = sp
	default:
		return apierr.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if f := q.filter; f != "" {
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
	writeSyncBody(w, body)
	return nil
}

// writeSyncBody sends a sync response in one Write with its length, so
// that a body past net/http's 2 KiB buffer goes out whole rather than
// chunked. As in writeRaw, a failed write means the client has gone.
func writeSyncBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType // shared, never changed: one allocation less per response
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}

var jsonContentType = []string{"application/json"}

// syncQuery is the query parameters /sync reads.
type syncQuery struct {
	since, timeout, filter, fullState, setPresence string
}

// parseSyncQuery reads /sync's parameters from a raw query as
// url.ParseQuery and Values.Get would (the first well-formed value of a
// key wins; pairs with a semicolon or a bad escape are skipped), without
// building the map: every woken long-poll parses its query, and the map
// and its slices were a good part of the garbage per delivery.
func parseSyncQuery(raw string) syncQuery {
	var q syncQuery
	var seen [5]bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k) // allocates only when escaped
		if err != nil {
			continue
		}
		var i int
		var dst *string
		switch k {
		case "since":
			i, dst = 0, &q.since
		case "timeout":
			i, dst = 1, &q.timeout
		case "filter":
			i, dst = 2, &q.filter
		case "full_state":
			i, dst = 3, &q.fullState
		case "set_presence":
			i, dst = 4, &q.setPresence
		default:
			continue
		}
		if seen[i] {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		seen[i], *dst = true, v
	}
	return q
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
