package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/storage"
)

// uiaSessions hands out user-interactive auth session IDs. Every flow
// Parley offers has a single stage, so a session needs no stage tracking:
// it only lives until that stage passes or 15 minutes go by.
type uiaSessions struct {
	mu       sync.Mutex
	sessions map[string]*uiaSession // guarded by mu
}

type uiaSession struct {
	created time.Time
}

func newUIASessions() *uiaSessions { return &uiaSessions{sessions: map[string]*uiaSession{}} }

func (u *uiaSessions) create() string {
	id := randomToken(16)
	u.mu.Lock()
	now := time.Now()
	for k, s := range u.sessions {
		if now.Sub(s.created) > 15*time.Minute {
			delete(u.sessions, k)
		}
	}
	u.sessions[id] = &uiaSession{created: now}
	u.mu.Unlock()
	return id
}

func (u *uiaSessions) drop(id string) {
	u.mu.Lock()
	delete(u.sessions, id)
	u.mu.Unlock()
}

// uiaAuth is the "auth" member of a request body.
type uiaAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	Token      string `json:"token"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User string `json:"user"`
}

// uiaChallenge is the 401 that starts or continues an auth session.
func uiaChallenge(stage, session string, completed []string, failure *apierr.Error) error {
	body := map[string]any{
		"flows":   []map[string]any{{"stages": []string{stage}}},
		"params":  map[string]any{},
		"session": session,
	}
	if len(completed) > 0 {
		body["completed"] = completed
	}
	// The first challenge is flows, params and session only: clients (mautrix
	// among them) tell a challenge from a refusal by the missing errcode.
	e := &apierr.Error{Status: http.StatusUnauthorized, Extra: body}
	if failure != nil {
		e.Code, e.Message = failure.Code, failure.Message
	}
	return e
}

// requirePassword runs the m.login.password stage for sensitive operations
// on the caller's own account.
func (a *API) requirePassword(ctx context.Context, s *session, auth *uiaAuth) error {
	if auth == nil || auth.Type == "" {
		return uiaChallenge("m.login.password", a.uia.create(), nil, nil)
	}
	if auth.Type != "m.login.password" {
		return uiaChallenge("m.login.password", auth.Session, nil, apierr.BadJSON("Unsupported auth type"))
	}
	name := auth.Identifier.User
	if name == "" {
		name = auth.User
	}
	if name != "" {
		id, err := a.userIDFor(name)
		if err != nil || id != s.UserID {
			return uiaChallenge("m.login.password", auth.Session, nil, apierr.Forbidden("You can only authenticate as yourself"))
		}
	}
	if err := a.checkPassword(ctx, s.UserID, auth.Password); err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
			return err // limited: retry later, not a failed stage
		}
		if errors.As(err, &ae) {
			return uiaChallenge("m.login.password", auth.Session, nil, ae)
		}
		return err
	}
	a.uia.drop(auth.Session)
	return nil
}

type registerRequest struct {
	Username                 string   `json:"username"`
	Password                 string   `json:"password"`
	DeviceID                 string   `json:"device_id"`
	InitialDeviceDisplayName string   `json:"initial_device_display_name"`
	InhibitLogin             bool     `json:"inhibit_login"`
	Auth                     *uiaAuth `json:"auth"`
}

func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	if kind := r.URL.Query().Get("kind"); kind == "guest" {
		return apierr.New(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
	}
	mode := a.cfg.RegistrationMode
	if mode != "open" && mode != "token" {
		return apierr.Forbidden("Registration is disabled")
	}
	var req registerRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := devices.Validate(req.DeviceID, req.InitialDeviceDisplayName); err != nil {
		return err
	}
	ctx := r.Context()
	var userID string
	if req.Username != "" {
		id, err := a.validateNewUser(ctx, req.Username)
		if err != nil {
			return err
		}
		userID = id
	}
	stage := "m.login.dummy"
	if mode == "token" {
		stage = "m.login.registration_token"
	}
	if req.Auth == nil || req.Auth.Type == "" {
		return uiaChallenge(stage, a.uia.create(), nil, nil)
	}
	// Check what can fail before a registration token is spent on it.
	if req.Password == "" {
		return apierr.MissingParam("A password is required")
	}
	if len(req.Password) > 512 {
		return apierr.New(http.StatusBadRequest, "M_WEAK_PASSWORD", "Password is too long")
	}
	if req.Auth.Type != stage {
		return uiaChallenge(stage, req.Auth.Session, nil, apierr.Forbidden("This server requires "+stage))
	}
	if err := a.limitRegistration(r); err != nil {
		return err
	}
	done, err := a.takeHashShare(r) // before a registration token is spent
	if err != nil {
		return err
	}
	defer done()
	if stage == "m.login.registration_token" {
		ok, err := a.tokenValid(ctx, req.Auth.Token, true)
		if err != nil {
			return err
		}
		if !ok {
			return uiaChallenge(stage, req.Auth.Session, nil, apierr.New(http.StatusUnauthorized, "M_FORBIDDEN", "Invalid registration token"))
		}
	}
	a.uia.drop(req.Auth.Session)
	if userID == "" {
		userID = "@" + strings.ToLower(randomToken(9)) + ":" + a.cfg.ServerName
		userID = strings.NewReplacer("_", "x").Replace(userID)
	}
	hash, err := a.hasher.Hash(ctx, req.Password)
	if err != nil {
		return hashErr(err)
	}
	local := strings.TrimPrefix(strings.SplitN(userID, ":", 2)[0], "@")
	// The account and its first device are written in one transaction
	// (registerdevice.go), so a refused device leaves no account behind.
	var dev *storage.Device
	var token string
	if !req.InhibitLogin {
		dev, token = newDeviceRow(userID, req.DeviceID, req.InitialDeviceDisplayName, clientIP(r))
	}
	err = a.store.CreateAccount(ctx, storage.User{UserID: userID, PasswordHash: hash, DisplayName: local, CreatedTS: time.Now().UnixMilli()}, dev)
	if errors.Is(err, storage.ErrConflict) {
		return apierr.New(http.StatusBadRequest, "M_USER_IN_USE", "User ID already taken")
	}
	if err != nil {
		return err
	}
	resp := map[string]any{"user_id": userID, "home_server": a.cfg.ServerName}
	if dev != nil {
		a.tokens.dropUser(userID, dev.DeviceID)
		resp["access_token"], resp["device_id"] = token, dev.DeviceID
	}
	return writeJSON(w, resp)
}

// validateNewUser checks a requested localpart's grammar and availability.
func (a *API) validateNewUser(ctx context.Context, name string) (string, error) {
	name = strings.ToLower(strings.TrimPrefix(name, "@"))
	if i := strings.IndexByte(name, ':'); i >= 0 {
		if name[i+1:] != a.cfg.ServerName {
			return "", apierr.New(http.StatusBadRequest, "M_INVALID_USERNAME", "User ID must be on this server")
		}
		name = name[:i]
	}
	userID := "@" + name + ":" + a.cfg.ServerName
	if !localpartRE.MatchString(name) || len(userID) > 255 {
		return "", apierr.New(http.StatusBadRequest, "M_INVALID_USERNAME", "User ID may only contain a-z, 0-9, . _ = - / +")
	}
	if _, err := a.store.GetUser(ctx, userID); err == nil {
		return "", apierr.New(http.StatusBadRequest, "M_USER_IN_USE", "User ID already taken")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	return userID, nil
}

func (a *API) tokenValid(ctx context.Context, token string, use bool) (bool, error) {
	if token == "" {
		return false, nil
	}
	for _, t := range a.cfg.RegistrationTokens {
		if t == token {
			return true, nil
		}
	}
	return a.store.UseRegistrationToken(ctx, token, time.Now().UnixMilli(), use)
}

func (a *API) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.validateNewUser(r.Context(), r.URL.Query().Get("username")); err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"available": true})
}

func (a *API) registrationTokenValidity(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.RegistrationMode != "token" {
		return apierr.Forbidden("Registration tokens are not in use")
	}
	ok, err := a.tokenValid(r.Context(), r.URL.Query().Get("token"), false)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"valid": ok})
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		NewPassword   string   `json:"new_password"`
		LogoutDevices *bool    `json:"logout_devices"`
		Auth          *uiaAuth `json:"auth"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.requirePassword(r.Context(), s, req.Auth); err != nil {
		return err
	}
	if req.NewPassword == "" {
		return apierr.MissingParam("new_password is required")
	}
	if len(req.NewPassword) > 512 {
		return apierr.New(http.StatusBadRequest, "M_WEAK_PASSWORD", "Password is too long")
	}
	hash, err := a.hasher.Hash(r.Context(), req.NewPassword)
	if err != nil {
		return hashErr(err)
	}
	if err := a.store.SetPassword(r.Context(), s.UserID, hash); err != nil {
		return err
	}
	if req.LogoutDevices == nil || *req.LogoutDevices {
		if err := a.devices.DeleteOthers(r.Context(), s.UserID, s.DeviceID, a.forgetTokens(s.UserID)); err != nil {
			return err
		}
	}
	return writeJSON(w, emptyObject)
}
