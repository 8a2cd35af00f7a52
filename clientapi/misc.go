package clientapi

import (
	"net/http"

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
