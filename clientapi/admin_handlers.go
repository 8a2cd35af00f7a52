package clientapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/desks"
)

// mountDeskAdmin adds the desk operator routes under /_parley/admin/v1,
// and the Prometheus metrics. All of them need an admin's access token
// (Prometheus sends it as a bearer token).
func (a *API) mountDeskAdmin(r chi.Router) {
	if a.desks == nil {
		return
	}
	// The server's registry (Deps.Metrics), or one of our own: nothing
	// global, and only what we choose to show.
	reg := a.metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(a.desks.Collector())
	reg.MustRegister(a.rooms.Collector())
	if a.push != nil {
		reg.MustRegister(a.push.Collector())
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	r.Get("/metrics", a.adminOnly(func(w http.ResponseWriter, r *http.Request, _ *session) error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	r.Get("/desks", a.adminOnly(a.listDesks))
	r.Put("/desks/{deskId}", a.adminOnly(a.putDesk))
	r.Get("/desks/{deskId}", a.adminOnly(a.getDesk))
	r.Delete("/desks/{deskId}", a.adminOnly(a.deleteDesk))
	r.Put("/desks/{deskId}/agents/{userId}", a.adminOnly(a.putDeskAgent))
	r.Delete("/desks/{deskId}/agents/{userId}", a.adminOnly(a.deleteDeskAgent))
}

// adminOnly is authed for server admins only.
func (a *API) adminOnly(h handlerFunc) http.HandlerFunc {
	return a.authed(func(w http.ResponseWriter, r *http.Request, s *session) error {
		if !s.IsAdmin {
			return apierr.Forbidden("You are not a server admin")
		}
		return h(w, r, s)
	})
}

func (a *API) listDesks(w http.ResponseWriter, r *http.Request, _ *session) error {
	return writeJSON(w, map[string]any{"desks": a.desks.Desks()})
}

func (a *API) putDesk(w http.ResponseWriter, r *http.Request, _ *session) error {
	var p desks.DeskParams
	if err := a.readJSON(r, &p); err != nil {
		return err
	}
	v, err := a.desks.PutDesk(r.Context(), param(r, "deskId"), p)
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) getDesk(w http.ResponseWriter, r *http.Request, _ *session) error {
	v, err := a.desks.Desk(r.Context(), param(r, "deskId"))
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) deleteDesk(w http.ResponseWriter, r *http.Request, _ *session) error {
	if err := a.desks.DeleteDesk(r.Context(), param(r, "deskId")); err != nil {
		return deskErr(err)
	}
	return writeJSON(w, emptyObject)
}

func (a *API) putDeskAgent(w http.ResponseWriter, r *http.Request, _ *session) error {
	var p desks.AgentParams
	if err := a.readJSON(r, &p); err != nil {
		return err
	}
	v, err := a.desks.PutAgent(r.Context(), param(r, "deskId"), param(r, "userId"), p)
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) deleteDeskAgent(w http.ResponseWriter, r *http.Request, _ *session) error {
	if err := a.desks.RemoveAgent(r.Context(), param(r, "deskId"), param(r, "userId")); err != nil {
		return deskErr(err)
	}
	return writeJSON(w, emptyObject)
}
