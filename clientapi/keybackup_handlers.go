package clientapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/keybackup"
)

// Server-side key backup (spec: "Server-side key backups"). The rules live
// in package keybackup; these handlers parse requests and map its errors.

// mountKeyBackup adds the room_keys routes, their paths prefixed with
// prefix ("" inside a prefix's sub-router).
func (a *API) mountKeyBackup(r chi.Router, prefix string) {
	r.Post(prefix+"/room_keys/version", a.authed(a.createBackupVersion))
	r.Get(prefix+"/room_keys/version", a.authed(a.getBackupVersion))
	r.Get(prefix+"/room_keys/version/{version}", a.authed(a.getBackupVersion))
	r.Put(prefix+"/room_keys/version/{version}", a.authed(a.putBackupVersion))
	r.Delete(prefix+"/room_keys/version/{version}", a.authed(a.deleteBackupVersion))
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		r.Put(prefix+p, a.authed(a.putBackupKeys))
		r.Get(prefix+p, a.authed(a.getBackupKeys))
		r.Delete(prefix+p, a.authed(a.deleteBackupKeys))
	}
}

// backupError maps keybackup's errors to the spec's.
func backupError(err error) error {
	var wv *keybackup.WrongVersionError
	switch {
	case errors.As(err, &wv):
		e := apierr.New(http.StatusForbidden, "M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version; the current one is "+wv.Current)
		e.Extra = map[string]any{"current_version": wv.Current}
		return e
	case errors.Is(err, keybackup.ErrNotFound):
		return apierr.NotFound(backupReason(err))
	case errors.Is(err, keybackup.ErrInvalid):
		return apierr.InvalidParam(backupReason(err))
	case errors.Is(err, keybackup.ErrFull):
		return apierr.TooLarge(backupReason(err))
	}
	return err
}

// backupReason is the human-readable part of a keybackup error
// ("keybackup: not found: no current backup version").
func backupReason(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{keybackup.ErrNotFound, keybackup.ErrInvalid, keybackup.ErrFull} {
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	}
	if msg == "" {
		return "Bad request"
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func (a *API) createBackupVersion(w http.ResponseWriter, r *http.Request, s *session) error {
	var req backupVersionBody
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	v, err := a.keyBackup.CreateVersion(r.Context(), s.UserID, req.Algorithm, req.AuthData)
	if err != nil {
		return backupError(err)
	}
	return writeJSON(w, map[string]string{"version": v})
}

func (a *API) getBackupVersion(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := a.keyBackup.Version(r.Context(), s.UserID, param(r, "version"))
	if err != nil {
		return backupError(err)
	}
	return writeJSON(w, v)
}

func (a *API) putBackupVersion(w http.ResponseWriter, r *http.Request, s *session) error {
	var req backupVersionBody
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.keyBackup.UpdateVersion(r.Context(), s.UserID, param(r, "version"), req.Version, req.Algorithm, req.AuthData); err != nil {
		return backupError(err)
	}
	return writeJSON(w, emptyObject)
}

func (a *API) deleteBackupVersion(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.keyBackup.DeleteVersion(r.Context(), s.UserID, param(r, "version")); err != nil {
		return backupError(err)
	}
	return writeJSON(w, emptyObject)
}

// backupVersionParam is the required ?version= of the keys routes.
func backupVersionParam(r *http.Request) (string, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return "", apierr.MissingParam("The version query parameter is required")
	}
	return v, nil
}

func (a *API) putBackupKeys(w http.ResponseWriter, r *http.Request, s *session) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	var body json.RawMessage
	if err := a.readJSON(r, &body); err != nil {
		return err
	}
	keys, err := parseBackupKeys(body, param(r, "roomId"), param(r, "sessionId"))
	if err != nil {
		return err
	}
	c, err := a.keyBackup.PutKeys(r.Context(), s.UserID, version, keys)
	if err != nil {
		return backupError(err)
	}
	return writeJSON(w, c)
}

func (a *API) getBackupKeys(w http.ResponseWriter, r *http.Request, s *session) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	roomID, sessionID := param(r, "roomId"), param(r, "sessionId")
	keys, err := a.keyBackup.Keys(r.Context(), s.UserID, version, roomID, sessionID)
	if err != nil {
		return backupError(err)
	}
	switch {
	case sessionID != "":
		return writeJSON(w, keys[0].Data)
	case roomID != "":
		sessions := make(map[string]keybackup.KeyData, len(keys))
		for _, k := range keys {
			sessions[k.SessionID] = k.Data
		}
		return writeJSON(w, backupRoom{Sessions: sessions})
	}
	rooms := map[string]backupRoom{}
	for _, k := range keys {
		room, ok := rooms[k.RoomID]
		if !ok {
			room = backupRoom{Sessions: map[string]keybackup.KeyData{}}
			rooms[k.RoomID] = room
		}
		room.Sessions[k.SessionID] = k.Data
	}
	return writeJSON(w, map[string]any{"rooms": rooms})
}

func (a *API) deleteBackupKeys(w http.ResponseWriter, r *http.Request, s *session) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	c, err := a.keyBackup.DeleteKeys(r.Context(), s.UserID, version, param(r, "roomId"), param(r, "sessionId"))
	if err != nil {
		return backupError(err)
	}
	return writeJSON(w, c)
}

type backupRoom struct {
	Sessions map[string]keybackup.KeyData `json:"sessions"`
}

// wireKeyData is KeyBackupData as received: pointers tell a missing field
// from a zero one, since the spec makes all four required.
type wireKeyData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (d *wireKeyData) keyData() (keybackup.KeyData, error) {
	if d == nil || d.FirstMessageIndex == nil || d.ForwardedCount == nil || d.IsVerified == nil || d.SessionData == nil {
		return keybackup.KeyData{}, apierr.BadJSON("Each key needs first_message_index, forwarded_count, is_verified and session_data")
	}
	return keybackup.KeyData{FirstMessageIndex: *d.FirstMessageIndex, ForwardedCount: *d.ForwardedCount,
		IsVerified: *d.IsVerified, SessionData: d.SessionData}, nil
}

type wireRoom struct {
	Sessions map[string]*wireKeyData `json:"sessions"`
}

// parseBackupKeys reads the body of a room_keys/keys PUT, whose shape
// depends on the route: all rooms ({"rooms": {room: {"sessions": ...}}}),
// one room ({"sessions": {session: KeyData}}) or one session (KeyData).
// Validation of the values themselves is keybackup's.
func parseBackupKeys(body []byte, roomID, sessionID string) ([]keybackup.Key, error) {
	bad := func(err error) error { return apierr.BadJSON(fmt.Sprintf("Request body has the wrong shape: %v", err)) }
	var keys []keybackup.Key
	addRoom := func(roomID string, room *wireRoom) error {
		if room == nil {
			return apierr.BadJSON("Each room needs a sessions object")
		}
		for sid, d := range room.Sessions {
			kd, err := d.keyData()
			if err != nil {
				return err
			}
			keys = append(keys, keybackup.Key{RoomID: roomID, SessionID: sid, Data: kd})
		}
		return nil
	}
	switch {
	case sessionID != "":
		var d wireKeyData
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, bad(err)
		}
		kd, err := d.keyData()
		if err != nil {
			return nil, err
		}
		return []keybackup.Key{{RoomID: roomID, SessionID: sessionID, Data: kd}}, nil
	case roomID != "":
		var room wireRoom
		if err := json.Unmarshal(body, &room); err != nil {
			return nil, bad(err)
		}
		if room.Sessions == nil {
			return nil, apierr.BadJSON("The body needs a sessions object")
		}
		if err := addRoom(roomID, &room); err != nil {
			return nil, err
		}
	default:
		var all struct {
			Rooms map[string]*wireRoom `json:"rooms"`
		}
		if err := json.Unmarshal(body, &all); err != nil {
			return nil, bad(err)
		}
		if all.Rooms == nil {
			return nil, apierr.BadJSON("The body needs a rooms object")
		}
		for rid, room := range all.Rooms {
			if err := addRoom(rid, room); err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}
