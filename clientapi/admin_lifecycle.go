package clientapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// The operator routes of issue 16 beyond the first admin API: account
// deactivation and reactivation, room deletion and purges, media
// administration. Package admin holds the rules; these handlers only
// parse and answer. Every route is adminOnly.

func (a *API) mountAdminLifecycle(r chi.Router) {
	r.Post("/users/{userId}/deactivate", a.adminOnly(a.adminDeactivate))
	r.Post("/users/{userId}/reactivate", a.adminOnly(a.adminReactivate))
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
