package clientapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/desks"
	"github.com/parley-im/parley/rooms/pdu"
)

// mountDesks adds the consultation routes under /_parley/client/v1: what
// customers and agents do. The operator routes are in admin_handlers.go;
// the guide is docs/desks.md.
func (a *API) mountDesks(r chi.Router) {
	if a.desks == nil {
		return
	}
	r.Post("/desks/{deskId}/consultations", a.authed(a.openConsultation))
	r.Get("/desks/{deskId}/consultations", a.authed(a.listConsultations))
	r.Get("/desks/{deskId}/consultations/{consultationId}", a.authed(a.getConsultation))
	r.Post("/desks/{deskId}/consultations/{consultationId}/transfer", a.authed(a.transferConsultation))
	r.Post("/desks/{deskId}/consultations/{consultationId}/close", a.authed(a.closeConsultation))
	r.Put("/desks/{deskId}/agents/{userId}/status", a.authed(a.putAgentStatus))
}

// deskErr maps the desks package's errors to Matrix errors; anything else
// is an internal fault for a.fail.
func deskErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "desks: ") {
		msg = msg[i+2:]
		if j := strings.Index(msg, ": "); j >= 0 {
			msg = msg[j+2:]
		}
	}
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	switch {
	case errors.Is(err, desks.ErrNotFound):
		return apierr.NotFound(msg)
	case errors.Is(err, desks.ErrForbidden):
		return apierr.Forbidden(msg)
	case errors.Is(err, desks.ErrInvalid):
		return apierr.InvalidParam(msg)
	case errors.Is(err, desks.ErrBusy):
		return apierr.LimitExceeded(500)
	}
	return err
}

func actor(s *session) desks.Actor { return desks.Actor{UserID: s.UserID, Admin: s.IsAdmin} }

func (a *API) openConsultation(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Category string `json:"category"`
		Body     string `json:"body"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	v, err := a.desks.Open(r.Context(), desks.OpenRequest{DeskID: param(r, "deskId"), Customer: s.UserID, DeviceID: s.DeviceID,
		Category: req.Category, Body: req.Body})
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) listConsultations(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := a.desks.List(r.Context(), param(r, "deskId"), actor(s), r.URL.Query().Get("state"))
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, map[string]any{"consultations": list})
}

func (a *API) getConsultation(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := a.desks.Consultation(r.Context(), param(r, "deskId"), param(r, "consultationId"), actor(s))
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) transferConsultation(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		To string `json:"to"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if !pdu.ValidUserID(req.To) {
		return apierr.InvalidParam("to must be the user ID of an agent of this desk")
	}
	v, err := a.desks.Transfer(r.Context(), param(r, "deskId"), param(r, "consultationId"), actor(s), req.To)
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) closeConsultation(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Rating *int `json:"rating"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	rating := 0
	if req.Rating != nil {
		if *req.Rating < 1 || *req.Rating > 5 {
			return apierr.InvalidParam("rating must be an integer from 1 to 5")
		}
		rating = *req.Rating
	}
	v, err := a.desks.Close(r.Context(), param(r, "deskId"), param(r, "consultationId"), actor(s), rating)
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) putAgentStatus(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Status desks.Status `json:"status"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	v, err := a.desks.SetStatus(r.Context(), param(r, "deskId"), param(r, "userId"), actor(s), req.Status)
	if err != nil {
		return deskErr(err)
	}
	return writeJSON(w, v)
}
