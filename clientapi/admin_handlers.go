package clientapi

import "github.com/go-chi/chi/v5"

// mountDeskAdmin adds the desk operator routes under /_parley/admin/v1.
func (a *API) mountDeskAdmin(r chi.Router) {
	if a.desks == nil {
		return
	}
}
