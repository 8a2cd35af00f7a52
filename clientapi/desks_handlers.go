package clientapi

import "github.com/go-chi/chi/v5"

// mountDesks adds the consultation routes under /_parley/client/v1.
func (a *API) mountDesks(r chi.Router) {
	if a.desks == nil {
		return
	}
}
