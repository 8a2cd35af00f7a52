package clientapi

import "github.com/go-chi/chi/v5"

// mountClientMisc adds the rest a client calls (issue 14) under a /v3 or
// /r0 prefix: room initialSync, reports, timestamp lookup, OpenID tokens,
// deactivation, upgrade. Kept in one place so router.go changes by one line.
func (a *API) mountClientMisc(r chi.Router) {
	r.Get("/rooms/{roomId}/initialSync", a.authed(a.roomInitialSync))
	r.Post("/rooms/{roomId}/report/{eventId}", a.authed(a.reportEvent))
	r.Post("/rooms/{roomId}/report", a.authed(a.reportRoom))
	r.Post("/user/{userId}/openid/request_token", a.authed(a.requestOpenIDToken))
	r.Post("/account/deactivate", a.authed(a.deactivateAccount))
	r.Post("/rooms/{roomId}/upgrade", a.authed(a.upgradeRoom))
}

// mountClientMiscV1 adds the /_matrix/client/v1 routes of the rest a
// client calls.
func (a *API) mountClientMiscV1(r chi.Router) {
	r.Get("/_matrix/client/v1/rooms/{roomId}/timestamp_to_event", a.authed(a.timestampToEvent))
	// A federation endpoint on the client listener until Parley has a
	// federation router (clientmisc.go, openIDUserInfo).
	r.Get("/_matrix/federation/v1/openid/userinfo", a.open(a.openIDUserInfo))
}
