package clientapi

import (
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/push"
)

// GET /pushers and POST /pushers/set. The rules (kinds, URLs, limits) live
// in package push; these handlers only decode and encode.

func (a *API) getPushers(w http.ResponseWriter, r *http.Request, s *session) error {
	if a.push == nil {
		return writeJSON(w, map[string]any{"pushers": []any{}})
	}
	ps, err := a.push.List(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"pushers": ps})
}

// setPusher adds, replaces or (kind null) deletes a pusher of the calling
// device.
func (a *API) setPusher(w http.ResponseWriter, r *http.Request, s *session) error {
	var req push.SetRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if a.push == nil {
		return apierr.Unrecognized("push is not available on this server")
	}
	if err := a.push.Set(r.Context(), s.UserID, s.DeviceID, &req); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
