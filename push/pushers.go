package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/storage"
)

// NotifyPath is the path every http pusher's data.url must have: the Push
// Gateway API's only endpoint.
const NotifyPath = "/_matrix/push/v1/notify"

// Field limits. The spec fixes app_id (64) and pushkey (512); the others
// keep a stored pusher, sent with every notification, small.
const (
	maxAppID      = 64
	maxPushKey    = 512
	maxURL        = 2048
	maxNameBytes  = 256 // app_display_name, device_display_name, profile_tag, lang
	maxDataBytes  = 4096
	formatEventID = "event_id_only"
)

// SetRequest is the body of POST /pushers/set. Kind is nil for JSON null:
// delete the pusher.
type SetRequest struct {
	Kind              *string         `json:"kind"`
	AppID             string          `json:"app_id"`
	PushKey           string          `json:"pushkey"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// Pusher is a pusher as GET /pushers lists it.
type Pusher struct {
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	PushKey           string          `json:"pushkey"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// pusherData is the part of data the server reads.
type pusherData struct {
	URL    string `json:"url"`
	Format string `json:"format"`
}

// CheckSet validates a request without touching the store, and returns the
// data object compacted. It is the one place pusher rules live.
func CheckSet(req *SetRequest) (json.RawMessage, error) {
	switch {
	case req.AppID == "" || req.PushKey == "":
		return nil, fail(ErrMissingParam, "app_id and pushkey are required")
	case len(req.AppID) > maxAppID:
		return nil, fail(ErrInvalidParam, "app_id must be at most 64 bytes")
	case len(req.PushKey) > maxPushKey:
		return nil, fail(ErrInvalidParam, "pushkey must be at most 512 bytes")
	case !utf8.ValidString(req.AppID) || !utf8.ValidString(req.PushKey) || strings.ContainsRune(req.AppID+req.PushKey, 0):
		return nil, fail(ErrInvalidParam, "app_id and pushkey must be valid UTF-8 without NUL")
	}
	if req.Kind == nil {
		return nil, nil // a deletion needs nothing more
	}
	if *req.Kind != "http" && *req.Kind != "email" {
		return nil, fail(ErrInvalidParam, "kind must be http, email or null")
	}
	if req.AppDisplayName == "" || req.DeviceDisplayName == "" || req.Lang == "" || len(req.Data) == 0 {
		return nil, fail(ErrMissingParam, "app_display_name, device_display_name, lang and data are required")
	}
	for _, s := range []string{req.AppDisplayName, req.DeviceDisplayName, req.ProfileTag, req.Lang} {
		if len(s) > maxNameBytes || strings.ContainsRune(s, 0) {
			return nil, fail(ErrInvalidParam, "app_display_name, device_display_name, profile_tag and lang must be at most 256 bytes, without NUL")
		}
	}
	if len(req.Data) > maxDataBytes {
		return nil, fail(ErrInvalidParam, "data must be at most 4096 bytes")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(req.Data, &obj); err != nil || obj == nil {
		return nil, fail(ErrBadJSON, "data must be an object")
	}
	var d pusherData
	if err := json.Unmarshal(req.Data, &d); err != nil {
		return nil, fail(ErrBadJSON, "data.url and data.format must be strings")
	}
	if _, ok := obj["format"]; ok && d.Format != formatEventID {
		return nil, fail(ErrInvalidParam, "data.format must be event_id_only or absent")
	}
	if *req.Kind == "http" {
		if d.URL == "" {
			return nil, fail(ErrMissingParam, "data.url is required for http pushers")
		}
		if err := checkURL(d.URL); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, req.Data); err != nil {
		return nil, fail(ErrBadJSON, "data must be an object")
	}
	return buf.Bytes(), nil
}

// checkURL accepts an absolute http(s) URL whose path is NotifyPath. The
// host is checked again at every dial (guard.go): a name may resolve to a
// private address later.
func checkURL(raw string) error {
	bad := fail(ErrInvalidParam, "data.url must be an http(s) URL ending in "+NotifyPath)
	if len(raw) > maxURL {
		return bad
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || u.Fragment != "" || !strings.HasSuffix(u.Path, NotifyPath) {
		return bad
	}
	return nil
}

// List returns the user's pushers.
func (s *Service) List(ctx context.Context, userID string) ([]Pusher, error) {
	ps, err := s.store.Pushers(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Pusher, 0, len(ps))
	for _, p := range ps {
		out = append(out, Pusher{Kind: p.Kind, AppID: p.AppID, PushKey: p.PushKey, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: json.RawMessage(p.Data)})
	}
	return out, nil
}

// Set applies POST /pushers/set for deviceID of userID: adds, replaces or
// (kind null) deletes a pusher. Deleting one that does not exist succeeds,
// as in Synapse: clients delete on logout without checking first.
func (s *Service) Set(ctx context.Context, userID, deviceID string, req *SetRequest) error {
	data, err := CheckSet(req)
	if err != nil {
		return err
	}
	if req.Kind == nil {
		_, err := s.store.DeletePusher(ctx, userID, req.AppID, req.PushKey)
		return err
	}
	// Announced before the insert, and under setMu: the scanner's count
	// of pushers cannot run between the two and switch reading off. setMu
	// also serialises the pusher ID counter's read-modify-write (setting a
	// pusher is rare; the lock costs nothing that matters).
	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.anyPushers.Store(true)
	_, _, err = s.store.SetPusher(ctx, storage.Pusher{UserID: userID, DeviceID: deviceID, Kind: *req.Kind, AppID: req.AppID,
		PushKey: req.PushKey, AppDisplayName: req.AppDisplayName, DeviceDisplayName: req.DeviceDisplayName,
		ProfileTag: req.ProfileTag, Lang: req.Lang, Data: string(data), PushKeyTS: s.cfg.Now().UnixMilli()},
		req.Append, s.cfg.MaxPushersPerUser)
	if errors.Is(err, storage.ErrTooManyPushers) {
		return fail(ErrTooMany, "this account has the maximum number of pushers")
	}
	return err
}
