package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/media"
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
	r.Get("/users/{userId}/media", a.adminOnly(a.adminUserMedia))
	r.Delete("/media/{serverName}/{mediaId}", a.adminOnly(a.adminDeleteMedia))
	r.Put("/media/{serverName}/{mediaId}/quarantine", a.adminOnly(a.adminQuarantineMedia))
	r.Post("/media/purge", a.adminOnly(a.adminPurgeMedia))
	r.Post("/send_server_notice", a.adminOnly(a.adminSendNotice))
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

func (a *API) adminUserMedia(w http.ResponseWriter, r *http.Request, _ *session) error {
	p, err := adminPage(r)
	if err != nil {
		return err
	}
	items, next, err := a.admin.UserMedia(r.Context(), param(r, "userId"), p)
	if err != nil {
		return err
	}
	return listAnswer(w, items, next)
}

func (a *API) adminDeleteMedia(w http.ResponseWriter, r *http.Request, s *session) error {
	res, err := a.admin.DeleteMedia(r.Context(), s.UserID, param(r, "serverName"), param(r, "mediaId"))
	if err != nil {
		return err
	}
	return writeJSON(w, res)
}

func (a *API) adminQuarantineMedia(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Quarantine *bool `json:"quarantine"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Quarantine == nil {
		return apierr.MissingParam("quarantine (true or false) is required")
	}
	if err := a.admin.QuarantineMedia(r.Context(), s.UserID, param(r, "serverName"), param(r, "mediaId"), *req.Quarantine); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"quarantine": *req.Quarantine})
}

func (a *API) adminPurgeMedia(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		BeforeTS int64  `json:"before_ts"`
		SizeGT   int64  `json:"size_gt"`
		UserID   string `json:"user_id"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	res, err := a.admin.PurgeMedia(r.Context(), s.UserID, media.Filter{Uploader: req.UserID, BeforeTS: req.BeforeTS, LargerThan: req.SizeGT}, nil)
	if err != nil {
		return err
	}
	return writeJSON(w, res)
}

func (a *API) adminSendNotice(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		UserID  string          `json:"user_id"`
		All     bool            `json:"all"`
		Content json.RawMessage `json:"content"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.All == (req.UserID != "") {
		return apierr.InvalidParam("give either user_id or all: true")
	}
	if req.All {
		n, err := a.admin.SendNoticeToAll(r.Context(), s.UserID, req.Content, nil)
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]any{"sent": n})
	}
	id, err := a.admin.SendNotice(r.Context(), s.UserID, req.UserID, req.Content)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"event_id": id})
}
