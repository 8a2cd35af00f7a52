package clientapi

import "github.com/go-chi/chi/v5"

// mountGraph adds the relationship routes under /_parley/client/v1.
func (a *API) mountGraph(r chi.Router) {}
