package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/parley-im/parley/accounts"
	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/reports"
)

// clientMisc holds the domain services of the rest a client calls (issue
// 14). They keep no state of their own beyond the store, so New builds
// them on Deps' store, rooms and devices, each given only the interface
// it needs (reports.Store, accounts.Store, accounts.AccountStore).
// Static after New.
type clientMisc struct {
	reports  *reports.Service  // nil without a store and rooms
	accounts *accounts.Service // nil without a store
	// deactivator is nil without a store, rooms and devices.
	deactivator *accounts.Deactivator
}

// newClientMisc builds the services of clientMisc; d's domain services are
// already filled in (withDomainServices).
func newClientMisc(d Deps) clientMisc {
	var m clientMisc
	if d.Store == nil {
		return m
	}
	m.accounts = accounts.New(d.Store)
	if d.Rooms != nil {
		m.reports = reports.New(d.Store, d.Rooms)
		if d.Devices != nil {
			m.deactivator = accounts.NewDeactivator(d.Store, d.Devices, d.Rooms)
		}
	}
	return m
}

func (a *API) miscServices() *clientMisc { return &a.misc }

// reportBody is the body of both report endpoints. Score is a pointer so
// that an absent score is told from 0; raw JSON so that a score of the
// wrong type is a clear 400 rather than a decoding error.
type reportBody struct {
	Reason *string          `json:"reason"`
	Score  *json.RawMessage `json:"score"`
}

// reportEvent serves POST /rooms/{roomId}/report/{eventId}.
func (a *API) reportEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.fileReport(w, r, s, param(r, "eventId"))
}

// reportRoom serves POST /rooms/{roomId}/report, where the spec requires
// a reason.
func (a *API) reportRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.fileReport(w, r, s, "")
}

func (a *API) fileReport(w http.ResponseWriter, r *http.Request, s *session, eventID string) error {
	var req reportBody
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	rep := reports.Report{RoomID: param(r, "roomId"), EventID: eventID}
	if req.Reason != nil {
		rep.Reason = *req.Reason
	} else if eventID == "" {
		return apierr.MissingParam("reason is required")
	}
	if req.Score != nil && string(*req.Score) != "null" {
		var score int64
		if err := json.Unmarshal(*req.Score, &score); err != nil {
			return apierr.InvalidParam("score must be an integer between -100 and 0")
		}
		rep.Score = &score
	}
	svc := a.miscServices().reports
	if svc == nil {
		return apierr.Unrecognized("Reports are not kept by this server")
	}
	if _, err := svc.File(r.Context(), s.UserID, rep); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// requestOpenIDToken serves POST /user/{userId}/openid/request_token: a
// token a third party (an integration manager) exchanges through
// GET /_matrix/federation/v1/openid/userinfo for the user's ID. Only for
// oneself.
func (a *API) requestOpenIDToken(w http.ResponseWriter, r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("Cannot request OpenID tokens for other users")
	}
	var req map[string]json.RawMessage
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	svc := a.miscServices().accounts
	if svc == nil {
		return apierr.Unrecognized("OpenID tokens are not kept by this server")
	}
	tok, err := svc.IssueOpenIDToken(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"access_token": tok.Token, "token_type": "Bearer",
		"matrix_server_name": a.cfg.ServerName, "expires_in": int64(tok.ExpiresIn.Seconds())})
}

// openIDUserInfo serves GET /_matrix/federation/v1/openid/userinfo. It is
// a federation endpoint, but Parley has no federation listener yet, so it
// is mounted on the client listener; it needs no server signature, only
// the token, so it can move as it is.
func (a *API) openIDUserInfo(w http.ResponseWriter, r *http.Request) error {
	svc := a.miscServices().accounts
	if svc == nil {
		return apierr.Unrecognized("OpenID tokens are not kept by this server")
	}
	user, err := svc.OpenIDUser(r.Context(), r.URL.Query().Get("access_token"))
	if errors.Is(err, accounts.ErrUnknownToken) {
		return apierr.UnknownToken("Access token unknown or expired")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"sub": user})
}

// deactivateAccount serves POST /account/deactivate: after the password
// stage of user-interactive auth, accounts.Deactivator does the work (the
// operator API calls the same function). Parley binds no third-party
// IDs, so there is nothing to unbind at an identity server.
func (a *API) deactivateAccount(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Auth  *uiaAuth `json:"auth"`
		Erase bool     `json:"erase"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.requirePassword(r.Context(), s, req.Auth); err != nil {
		return err
	}
	d := a.miscServices().deactivator
	if d == nil {
		return apierr.Unrecognized("Deactivation is not supported by this server's store")
	}
	if err := d.Deactivate(r.Context(), s.UserID, req.Erase, a.forgetTokens(s.UserID)); err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"id_server_unbind_result": "no-support"})
}

// upgradeRoom serves POST /rooms/{roomId}/upgrade; rooms.UpgradeRoom
// holds the rules.
func (a *API) upgradeRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		NewVersion string `json:"new_version"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.NewVersion == "" {
		return apierr.MissingParam("new_version is required")
	}
	newRoom, err := a.rooms.UpgradeRoom(r.Context(), s.UserID, param(r, "roomId"), req.NewVersion)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"replacement_room": newRoom})
}
