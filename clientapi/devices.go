package clientapi

import (
	"errors"
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
	devs, err := a.store.Devices(r.Context(), s.UserID)
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
	d, err := a.store.GetDevice(r.Context(), s.UserID, param(r, "deviceId"))
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Unknown device")
	}
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
	if err := validateDevice("", *req.DisplayName); err != nil {
		return err
	}
	err := a.store.RenameDevice(r.Context(), s.UserID, param(r, "deviceId"), *req.DisplayName)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Unknown device")
	}
	if err != nil {
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
	if _, err := a.store.GetDevice(r.Context(), s.UserID, id); errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Unknown device")
	} else if err != nil {
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
	if len(ids) > 0 {
		if err := a.store.DeleteDevices(r.Context(), s.UserID, ids); err != nil {
			return err
		}
	}
	for _, id := range ids {
		a.tokens.dropUser(s.UserID, id)
	}
	if err := a.rooms.DeviceListChanged(r.Context(), s.UserID); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
