package clientapi

// The device handlers: parsing, user-interactive auth and replies. The
// rules live in package devices.

import (
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/storage"
)

func deviceJSON(d storage.Device) map[string]any {
	m := map[string]any{"device_id": d.DeviceID, "display_name": d.DisplayName}
	if d.LastSeenTS > 0 {
		m["last_seen_ts"] = d.LastSeenTS
		m["last_seen_ip"] = d.LastSeenIP
	}
	return m
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, s *session) error {
	devs, err := a.devices.List(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		out = append(out, deviceJSON(d))
	}
	return writeJSON(w, map[string]any{"devices": out})
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := a.devices.Get(r.Context(), s.UserID, param(r, "deviceId"))
	if err != nil {
		return err
	}
	return writeJSON(w, deviceJSON(d))
}

func (a *API) renameDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.DisplayName == nil {
		return writeJSON(w, emptyObject)
	}
	if err := a.devices.Rename(r.Context(), s.UserID, param(r, "deviceId"), *req.DisplayName); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Auth *uiaAuth `json:"auth"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	id := param(r, "deviceId")
	if _, err := a.devices.Get(r.Context(), s.UserID, id); err != nil {
		return err
	}
	if err := a.requirePassword(r.Context(), s, req.Auth); err != nil {
		return err
	}
	return a.removeDevices(w, r, s, []string{id})
}

func (a *API) deleteDevices(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Devices []string `json:"devices"`
		Auth    *uiaAuth `json:"auth"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return apierr.MissingParam("devices is required")
	}
	if err := a.requirePassword(r.Context(), s, req.Auth); err != nil {
		return err
	}
	return a.removeDevices(w, r, s, req.Devices)
}

func (a *API) removeDevices(w http.ResponseWriter, r *http.Request, s *session, ids []string) error {
	if err := a.devices.Delete(r.Context(), s.UserID, ids, a.forgetTokens(s.UserID)); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// forgetTokens returns the callback that drops a removed device's cached
// access tokens ("" for all of the user's).
func (a *API) forgetTokens(userID string) func(deviceID string) {
	return func(deviceID string) { a.tokens.dropUser(userID, deviceID) }
}
