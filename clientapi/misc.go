package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
)

// Discovery, capabilities and the endpoints Parley answers without having
// the feature behind them: clients probe these at start-up and treat an
// error as a broken server, so an honest empty answer is worth more than a
// 404.

// specVersions are the client-server API versions Parley speaks. r0.6.1 stays
// for clients that predate v1.1 and look for it.
var specVersions = [...]string{
	"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
	"v1.9", "v1.10", "v1.11", "v1.12",
}

// wellKnown serves /.well-known/matrix/client, so clients given only the
// server name find the API. Encryption stays opt-in for new rooms.
func (a *API) wellKnown(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, map[string]any{
		"m.homeserver":    map[string]string{"base_url": a.cfg.PublicBaseURL},
		"io.element.e2ee": map[string]bool{"default": false},
	})
}

func (a *API) versions(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, map[string]any{
		"versions":          specVersions[:],
		"unstable_features": map[string]bool{},
	})
}

// capabilities tells clients what they may change. Third-party IDs are
// not supported at all, so their changes are off.
func (a *API) capabilities(w http.ResponseWriter, r *http.Request, s *session) error {
	available := map[string]string{}
	for _, v := range []string{"10", "11", "12"} {
		if pdu.Supported(v) {
			available[v] = "stable"
		}
	}
	return writeJSON(w, map[string]any{"capabilities": map[string]any{
		"m.room_versions":   map[string]any{"default": a.rooms.DefaultRoomVersion(), "available": available},
		"m.change_password": map[string]bool{"enabled": true},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
	}})
}

// threePIDs lists the account's third-party identifiers: Parley binds none.
func (a *API) threePIDs(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, map[string]any{"threepids": []any{}})
}

// notifications is the notification history. Parley keeps none (it has no
// push gateway), so the list is always empty.
func (a *API) notifications(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, map[string]any{"notifications": []any{}})
}

func (a *API) getPushers(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, map[string]any{"pushers": []any{}})
}

// pusherRequest is the body of POST /pushers/set. kind is a pointer because
// null means "delete this pusher".
type pusherRequest struct {
	Kind              *string         `json:"kind"`
	AppID             string          `json:"app_id"`
	PushKey           string          `json:"pushkey"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// setPusher validates a pusher and accepts it. Parley has no push gateway
// client yet, so the pusher is not stored; mobile clients register one on
// every start and must not be told their server is broken.
func (a *API) setPusher(w http.ResponseWriter, r *http.Request, s *session) error {
	var req pusherRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.AppID == "" || req.PushKey == "" {
		return apierr.MissingParam("app_id and pushkey are required")
	}
	if len(req.AppID) > 64 {
		return apierr.InvalidParam("app_id must be at most 64 bytes")
	}
	if len(req.PushKey) > 512 {
		return apierr.InvalidParam("pushkey must be at most 512 bytes")
	}
	if req.Kind == nil {
		// A deletion: nothing is stored, so nothing to delete.
		return writeJSON(w, emptyObject)
	}
	if *req.Kind != "http" && *req.Kind != "email" {
		return apierr.InvalidParam("kind must be http, email or null")
	}
	if req.AppDisplayName == "" || req.DeviceDisplayName == "" || req.Lang == "" || len(req.Data) == 0 {
		return apierr.MissingParam("app_display_name, device_display_name, lang and data are required")
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(req.Data, &data); err != nil || data == nil {
		return apierr.BadJSON("data must be an object")
	}
	if *req.Kind == "http" {
		var url string
		if err := json.Unmarshal(data["url"], &url); err != nil || url == "" {
			return apierr.MissingParam("data.url is required for http pushers")
		}
	}
	return writeJSON(w, emptyObject)
}

// turnServer answers 200 with an empty object when no TURN server is
// configured, as Synapse does: matrix-js-sdk reads that as "no TURN" and
// stays quiet, whereas an error is logged on every refresh. (A schema-shaped
// answer with an empty uris list is worse: browsers reject an ICE server
// without URLs.)
func (a *API) turnServer(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, emptyObject)
}

// thirdPartyProtocols lists bridged protocols: none.
func (a *API) thirdPartyProtocols(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, emptyObject)
}
