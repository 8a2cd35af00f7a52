package clientapi

import (
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
)

// Handler returns the HTTP handler for every client route.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(a.recoverPanics, a.cors, a.limitIP)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, apierr.Unrecognized("Unrecognized request"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Method not allowed"))
	})
	// Before any route: path and query text Parley can store (textcheck.go).
	r.Use(refuseUnstorableText)

	r.Get("/.well-known/matrix/client", a.open(a.wellKnown))
	r.Get("/_matrix/client/versions", a.open(a.versions))
	if a.media != nil {
		a.media.Mount(r, a.mediaAuth, a.mediaAccess)
	}

	r.Get("/_matrix/client/v1/register/m.login.registration_token/validity", a.open(a.registrationTokenValidity))
	a.mountClientMiscV1(r)                    // clientmisc_routes.go
	a.mountRelations(r, "/_matrix/client/v1") // relations_handlers.go
	// Parley's own additions: relationships (graph_handlers.go) and
	// customer-service desks (desks_handlers.go, admin_handlers.go).
	r.Route("/_parley/client/v1", func(r chi.Router) {
		a.mountGraph(r)
		a.mountDesks(r)
		a.mountEnvelopes(r) // envelopes_handlers.go
		a.mountChannels(r)  // channels_handlers.go
		a.mountMoments(r)   // moments_handlers.go
	})
	r.Route("/_parley/admin/v1", func(r chi.Router) {
		a.mountDeskAdmin(r)
		a.mountWalletAdmin(r) // envelopes_handlers.go
		a.mountAdmin(r)
	})
	// Unstable aliases that clients still call: Element's cross-signing
	// setup posts keys/device_signing/upload under /unstable, as Synapse
	// still serves it; key backup and signatures are served there too.
	// Full paths, not a sub-router, so other /unstable routes can be
	// added beside them.
	const unstable = "/_matrix/client/unstable"
	r.Post(unstable+"/keys/device_signing/upload", a.authed(a.deviceSigningUpload))
	r.Post(unstable+"/keys/signatures/upload", a.authed(a.signaturesUpload))
	a.mountKeyBackup(r, unstable)
	r.Post(slidingSyncPath, a.authedUnlimited(a.slidingSync)) // slidingsync.go; long-polls, like /sync
	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		r.Route(prefix, func(r chi.Router) {
			r.Get("/capabilities", a.authed(a.capabilities))
			// Accounts and devices (auth.go, devices.go).
			r.Get("/login", a.open(a.loginFlows))
			r.Post("/login", a.open(a.login))
			r.Post("/logout", a.authed(a.logout))
			r.Post("/logout/all", a.authed(a.logoutAll))
			r.Get("/account/whoami", a.authed(a.whoami))
			r.Post("/register", a.open(a.register))
			r.Get("/register/available", a.open(a.registerAvailable))
			r.Get("/register/m.login.registration_token/validity", a.open(a.registrationTokenValidity))
			r.Get("/devices", a.authed(a.listDevices))
			r.Get("/devices/{deviceId}", a.authed(a.getDevice))
			r.Put("/devices/{deviceId}", a.authed(a.renameDevice))
			r.Delete("/devices/{deviceId}", a.authed(a.deleteDevice))
			r.Post("/delete_devices", a.authed(a.deleteDevices))
			r.Post("/account/password", a.authed(a.changePassword))
			r.Get("/account/3pid", a.authed(a.threePIDs))

			// Rooms (rooms.go, messages.go).
			r.Post("/createRoom", a.authed(a.createRoom))
			r.Post("/join/{roomIdOrAlias}", a.authed(a.joinRoomOrAlias))
			r.Post("/knock/{roomIdOrAlias}", a.authed(a.knock))
			r.Post("/rooms/{roomId}/join", a.authed(a.joinRoom))
			r.Post("/rooms/{roomId}/invite", a.authed(a.invite))
			r.Post("/rooms/{roomId}/leave", a.authed(a.leave))
			r.Post("/rooms/{roomId}/forget", a.authed(a.forget))
			r.Post("/rooms/{roomId}/kick", a.authed(a.kick))
			r.Post("/rooms/{roomId}/ban", a.authed(a.ban))
			r.Post("/rooms/{roomId}/unban", a.authed(a.unban))
			r.Get("/joined_rooms", a.authed(a.joinedRooms))
			r.Put("/rooms/{roomId}/send/{eventType}/{txnId}", a.authed(a.send))
			r.Put("/rooms/{roomId}/state/{eventType}", a.authed(a.putState))
			r.Put("/rooms/{roomId}/state/{eventType}/", a.authed(a.putState)) // empty state key, as some clients send it
			r.Put("/rooms/{roomId}/state/{eventType}/{stateKey}", a.authed(a.putState))
			r.Get("/rooms/{roomId}/state", a.authed(a.getAllState))
			r.Get("/rooms/{roomId}/state/{eventType}", a.authed(a.getState))
			r.Get("/rooms/{roomId}/state/{eventType}/", a.authed(a.getState))
			r.Get("/rooms/{roomId}/state/{eventType}/{stateKey}", a.authed(a.getState))
			r.Put("/rooms/{roomId}/redact/{eventId}/{txnId}", a.authed(a.redact))
			r.Get("/rooms/{roomId}/messages", a.authed(a.messages))
			r.Get("/rooms/{roomId}/context/{eventId}", a.authed(a.eventContext))
			r.Get("/rooms/{roomId}/event/{eventId}", a.authed(a.getEvent))
			r.Get("/rooms/{roomId}/members", a.authed(a.members))
			r.Get("/rooms/{roomId}/joined_members", a.authed(a.joinedMembers))
			r.Get("/rooms/{roomId}/aliases", a.authed(a.roomAliases))
			a.mountRelations(r, "")

			// Sync and ephemeral (sync.go, ephemeral.go).
			r.Get("/sync", a.authedUnlimited(a.sync)) // long-polls are cheap and clients loop on them
			r.Post("/user/{userId}/filter", a.authed(a.putFilter))
			r.Get("/user/{userId}/filter/{filterId}", a.authed(a.getFilter))
			r.Post("/rooms/{roomId}/receipt/{receiptType}/{eventId}", a.authed(a.receipt))
			r.Post("/rooms/{roomId}/read_markers", a.authed(a.readMarkers))
			r.Put("/rooms/{roomId}/typing/{userId}", a.authed(a.typing))
			r.Get("/presence/{userId}/status", a.authed(a.getPresence))
			r.Put("/presence/{userId}/status", a.authed(a.putPresence))
			r.Put("/sendToDevice/{eventType}/{txnId}", a.authed(a.sendToDevice))

			// Profile, account data, directory, push rules, keys (profile.go,
			// accountdata.go, directory.go, pushrules.go, keys.go).
			r.Get("/profile/{userId}", a.open(a.getProfile))
			r.Get("/profile/{userId}/{field}", a.open(a.getProfileField))
			r.Put("/profile/{userId}/{field}", a.authed(a.putProfileField))
			r.Get("/user/{userId}/account_data/{type}", a.authed(a.getAccountData))
			r.Put("/user/{userId}/account_data/{type}", a.authed(a.putAccountData))
			r.Get("/user/{userId}/rooms/{roomId}/account_data/{type}", a.authed(a.getRoomAccountData))
			r.Put("/user/{userId}/rooms/{roomId}/account_data/{type}", a.authed(a.putRoomAccountData))
			r.Get("/user/{userId}/rooms/{roomId}/tags", a.authed(a.getTags))
			r.Put("/user/{userId}/rooms/{roomId}/tags/{tag}", a.authed(a.putTag))
			r.Delete("/user/{userId}/rooms/{roomId}/tags/{tag}", a.authed(a.deleteTag))
			r.Get("/directory/room/{alias}", a.open(a.getAlias))
			r.Put("/directory/room/{alias}", a.authed(a.putAlias))
			r.Delete("/directory/room/{alias}", a.authed(a.deleteAlias))
			r.Get("/directory/list/room/{roomId}", a.open(a.getRoomVisibility))
			r.Put("/directory/list/room/{roomId}", a.authed(a.putRoomVisibility))
			r.Get("/publicRooms", a.open(a.publicRooms))
			r.Post("/publicRooms", a.authed(a.publicRoomsSearch))
			r.Post("/user_directory/search", a.authed(a.userDirectorySearch))
			r.Post("/search", a.authed(a.search)) // search_handlers.go
			r.Get("/pushrules/", a.authed(a.getPushRules))
			r.Get("/pushrules", a.authed(a.getPushRules))
			r.Get("/pushrules/global/", a.authed(a.getPushRulesGlobal))
			r.Get("/pushrules/global/{kind}/{ruleId}", a.authed(a.getPushRule))
			r.Put("/pushrules/global/{kind}/{ruleId}", a.authed(a.putPushRule))
			r.Delete("/pushrules/global/{kind}/{ruleId}", a.authed(a.deletePushRule))
			r.Get("/pushrules/global/{kind}/{ruleId}/enabled", a.authed(a.getPushRuleEnabled))
			r.Put("/pushrules/global/{kind}/{ruleId}/enabled", a.authed(a.putPushRuleEnabled))
			r.Get("/pushrules/global/{kind}/{ruleId}/actions", a.authed(a.getPushRuleActions))
			r.Put("/pushrules/global/{kind}/{ruleId}/actions", a.authed(a.putPushRuleActions))
			r.Get("/pushers", a.authed(a.getPushers))
			r.Post("/pushers/set", a.authed(a.setPusher))
			r.Get("/notifications", a.authed(a.notifications))
			r.Post("/keys/upload", a.authed(a.keysUpload))
			r.Post("/keys/query", a.authed(a.keysQuery))
			r.Post("/keys/claim", a.authed(a.keysClaim))
			r.Get("/keys/changes", a.authed(a.keysChanges))
			r.Post("/keys/device_signing/upload", a.authed(a.deviceSigningUpload))
			r.Post("/keys/signatures/upload", a.authed(a.signaturesUpload))
			a.mountKeyBackup(r, "") // keybackup_handlers.go
			r.Get("/voip/turnServer", a.authed(a.turnServer))
			r.Get("/thirdparty/protocols", a.authed(a.thirdPartyProtocols))
			a.mountThirdParty(r) // thirdparty.go
			a.mountClientMisc(r) // clientmisc_routes.go
		})
	}
	return r
}

// cors answers preflight requests and marks every response as readable by
// browser clients, as the spec's CORS section asks.
var (
	corsOrigin  = []string{"*"}
	corsMethods = []string{"GET, POST, PUT, DELETE, OPTIONS"}
	corsHeaders = []string{"X-Requested-With, Content-Type, Authorization"}
)

func (a *API) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Shared, never-changed value slices: Header.Set would allocate
		// three per request, and every woken long-poll passes here.
		h := w.Header()
		h["Access-Control-Allow-Origin"] = corsOrigin
		h["Access-Control-Allow-Methods"] = corsMethods
		h["Access-Control-Allow-Headers"] = corsHeaders
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics answers 500 M_UNKNOWN if a handler panics, and logs it, so a
// bug shows up as one failed request rather than a dropped connection.
func (a *API) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				apierr.Write(w, apierr.Unknown("Internal server error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitIP applies the per-IP token bucket before any work.
func (a *API) limitIP(next http.Handler) http.Handler {
	if a.cfg.IPLimiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, loopback := limitKey(clientIP(r))
		if loopback {
			next.ServeHTTP(w, r) // local tools and tests; a proxy sends X-Forwarded-For
			return
		}
		if ok, retry := a.cfg.IPLimiter.Allow(key, time.Now()); !ok {
			apierr.Write(w, apierr.LimitExceeded(retry.Milliseconds()+1))
			return
		}
		next.ServeHTTP(w, r)
	})
}
