package clientapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
)

// mountThirdParty adds the third-party network lookups of the spec (section
// "Third-party Networks"). Parley bridges no protocol, so every lookup finds
// nothing, answered the way Synapse answers without application services: an
// empty list for users and locations, 404 M_NOT_FOUND for a protocol's
// metadata. Element Web asks /thirdparty/user/im.vector.protocol.sip_virtual
// on every start (its VoIP virtual-user check); a 404 M_UNRECOGNIZED there
// read as "endpoint missing" and was logged as an error each time.
func (a *API) mountThirdParty(r chi.Router) {
	r.Get("/thirdparty/protocol/{protocol}", a.authed(a.thirdPartyProtocol))
	r.Get("/thirdparty/user/{protocol}", a.authed(a.thirdPartyNone))
	r.Get("/thirdparty/location/{protocol}", a.authed(a.thirdPartyNone))
	r.Get("/thirdparty/user", a.authed(a.thirdPartyNone))
	r.Get("/thirdparty/location", a.authed(a.thirdPartyNone))
}

// thirdPartyProtocol: no protocol is known (see thirdPartyProtocols).
func (a *API) thirdPartyProtocol(w http.ResponseWriter, r *http.Request, s *session) error {
	return apierr.NotFound("Unknown third-party protocol")
}

// thirdPartyNone answers a user or location lookup: nothing matches.
func (a *API) thirdPartyNone(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, []any{})
}
