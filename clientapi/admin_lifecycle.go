package clientapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
)

// The operator routes of issue 16 beyond the first admin API: account
// deactivation and reactivation, room deletion and purges, media
// administration. Package admin holds the rules; these handlers only
// parse and answer. Every route is adminOnly.

func (a *API) mountAdminLifecycle(r chi.Router) {
	r.Post("/users/{userId}/deactivate", a.adminOnly(a.adminDeactivate))
	r.Post("/users/{userId}/reactivate", a.adminOnly(a.adminReactivate))
	r.Delete("/rooms/{roomId}", a.adminOnly(a.adminDeleteRoom))
	r.Post("/rooms/{roomId}/purge_history", a.adminOnly(a.adminPurgeHistory))
	r.Post("/rooms/{roomId}/make_room_admin", a.adminOnly(a.adminMakeRoomAdmin))
}

func (a *API) adminDeactivate(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Erase bool `json:"erase"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	res, err := a.admin.Deactivate(r.Context(), s.UserID, param(r, "userId"), req.Erase)
	if err != nil {
		return err
	}
	return writeJSON(w, res)
}

func (a *API) adminReactivate(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.admin.Reactivate(r.Context(), s.UserID, param(r, "userId"), req.Password); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) adminDeleteRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Purge bool `json:"purge"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	res, err := a.admin.DeleteRoom(r.Context(), s.UserID, param(r, "roomId"), req.Purge, nil)
	if err != nil {
		return err
	}
	return writeJSON(w, res)
}

func (a *API) adminPurgeHistory(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		BeforeTS *int64 `json:"before_ts"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.BeforeTS == nil {
		return apierr.MissingParam("before_ts (milliseconds since the epoch) is required")
	}
	n, err := a.admin.PurgeHistory(r.Context(), s.UserID, param(r, "roomId"), *req.BeforeTS)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"purged_events": n})
}

func (a *API) adminMakeRoomAdmin(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.UserID == "" {
		return apierr.MissingParam("user_id is required")
	}
	if err := a.admin.MakeRoomAdmin(r.Context(), s.UserID, param(r, "roomId"), req.UserID); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
