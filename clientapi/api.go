// Package clientapi serves the Matrix client-server API over HTTP; Parley's
// own /_parley/client/v1 additions will live here too. It owns request parsing,
// authentication, user-interactive auth, rate limiting and the mapping of
// errors to Matrix JSON. It holds no state of its own beyond caches: rooms
// writes, inbox syncs, storage remembers.
package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/accounts/password"
	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/channels"
	"github.com/parley-im/parley/desks"
	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/envelopes"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/keybackup"
	"github.com/parley-im/parley/media"
	"github.com/parley-im/parley/moments"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/push"
	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/ratelimit"
	"github.com/parley-im/parley/relations"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/search"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storetext"
	"github.com/parley-im/parley/todevice"
	"github.com/parley-im/parley/wallet"
)

// Config is what the client API needs from the server configuration.
type Config struct {
	ServerName    string
	PublicBaseURL string
	// RegistrationMode is closed, open or token.
	RegistrationMode   string
	RegistrationTokens []string
	// MaxBodyBytes caps JSON request bodies. Zero means 1 MiB.
	MaxBodyBytes int64
	// MaxSyncTimeout caps a /sync long-poll. Zero means 60s.
	MaxSyncTimeout time.Duration
	// DeviceLimiter is the flood guard on each device's authenticated
	// requests (all but /sync), keyed by user and device; IPLimiter limits
	// each client address. Nil limiters mean none. Actions (messages,
	// joins, invites, room creation, media uploads) have limits of their
	// own in the packages that perform them (rooms, media).
	DeviceLimiter *ratelimit.Limiter
	IPLimiter     *ratelimit.Limiter
	RateExempt    []string
	// FullSyncLimiter limits each user's initial and full_state syncs; nil
	// means no per-user limit (synclimit.go).
	FullSyncLimiter *ratelimit.Limiter
	// MaxConcurrentFullSyncs caps initial and full_state syncs built at
	// once, server-wide; more wait. Zero means 2.
	MaxConcurrentFullSyncs int
	// FailedLoginLimiter counts wrong passwords per target account;
	// RegisterLimiter counts registrations per client address. Nil means
	// unlimited.
	FailedLoginLimiter *ratelimit.Limiter
	RegisterLimiter    *ratelimit.Limiter
}

// Deps are the parts the API drives.
type Deps struct {
	Store    *storage.Store
	Rooms    *rooms.Service
	Notifier *inbox.Notifier
	Syncer   *inbox.Syncer
	Presence *inbox.Presence
	Media    *media.Repo
	Hasher   *password.Hasher
	Logger   *slog.Logger
	// Graph holds follows, friendships and blocks (graph_handlers.go).
	Graph graph.Store
	// Contacts caches friend lists for presence; friendship changes made
	// here are forgotten from it at once.
	Contacts *graph.Contacts
	// Desks runs customer-service desks (desks_handlers.go); nil disables them.
	Desks *desks.Service
	// Wallet and Envelopes serve the ledger and red envelopes
	// (envelopes_handlers.go); nil disables them.
	Wallet    *wallet.Service
	Envelopes *envelopes.Service
	// Channels runs broadcast channels (channels_handlers.go); nil
	// leaves their routes unmounted.
	Channels *channels.Service
	// Moments runs moments (moments_handlers.go); nil leaves their routes
	// unmounted.
	Moments *moments.Service
	// ToDevice checks and queues to-device messages (sendToDevice).
	ToDevice *todevice.Service
	// PushRules owns users' push rules; nil builds one on Store and Rooms
	// with the default cache size.
	PushRules *pushrules.Service
	// Profiles, Devices, Keys and Directory own their rules; a nil one is
	// built on Store and Rooms.
	Profiles  *profiles.Service
	Devices   *devices.Service
	Keys      *e2ekeys.Service
	Directory *directory.Service
	// KeyBackup owns server-side key backup (keybackup_handlers.go); nil
	// builds one on Store with the default limits.
	KeyBackup *keybackup.Service
	// Relations serves /relations, /threads and bundled aggregations
	// (relations_handlers.go); nil builds one on Store and Rooms.
	Relations *relations.Service
	// Remote joins and leaves rooms through other servers
	// (remote_membership.go); nil when federation is off.
	Remote RemoteMembership
	// Backfill fetches history from before this server joined a room,
	// for /messages (backfill.go); nil when federation is off.
	Backfill Backfiller
	// Metrics is the server's registry, which GET /_parley/admin/v1/metrics
	// serves; the writer's and desks' collectors are added to it. Nil
	// means a registry of the API's own.
	Metrics *prometheus.Registry
	// Search runs /search (search_handlers.go); nil builds one on Store
	// and Rooms.
	Search *search.Service
	// Push stores pushers and delivers to push gateways
	// (pushers_handlers.go); nil serves an empty list and refuses
	// POST /pushers/set with 404 M_UNRECOGNIZED.
	Push *push.Service
}

// API is the client-server API.
type API struct {
	// Static after New.
	cfg      Config
	store    Store
	rooms    *rooms.Service
	n        *inbox.Notifier
	syncer   *inbox.Syncer
	sliding  *inbox.Sliding // simplified sliding sync over syncer (slidingsync.go)
	pres     *inbox.Presence
	media    *media.Repo
	hasher   *password.Hasher
	log      *slog.Logger
	exempt   map[string]bool
	graph    graph.Store
	contacts *graph.Contacts
	desks    *desks.Service
	channels *channels.Service // nil: channel routes unmounted
	moments  *moments.Service  // nil: moments routes unmounted
	todev    *todevice.Service
	// pushRules serves and edits push rules (pushrules_handlers.go) and
	// gives sync the muted rooms.
	pushRules *pushrules.Service
	// The domain services the handlers call: they hold the rules,
	// the handlers the HTTP.
	profiles  *profiles.Service
	devices   *devices.Service
	keys      *e2ekeys.Service
	directory *directory.Service
	keyBackup *keybackup.Service
	// admin runs operator actions and their audit (admin_ops.go).
	admin *admin.Service
	// misc holds the services of clientmisc.go.
	misc clientMisc
	rel  *relations.Service
	// receipts and tsEvents are the store reads of room initialSync and
	// timestamp_to_event (initialsync.go, timestamp.go), which Store does
	// not list: Deps.Store, or nil without one.
	receipts receiptReader
	tsEvents tsEventReader
	// metrics is Deps.Metrics (admin_handlers.go).
	metrics *prometheus.Registry

	// remote joins and leaves through other servers; nil without
	// federation.
	remote RemoteMembership
	// backfill fills /messages from other servers; nil without federation.
	backfill Backfiller
	// searcher runs /search (search_handlers.go).
	searcher *search.Service
	push     *push.Service

	tokens *tokenCache
	uia    *uiaSessions
	// fullSyncs holds a token per full sync being built (synclimit.go).
	fullSyncs chan struct{}
	// hashShares bounds password checks in flight per client address
	// (loginlimit.go).
	hashShares hashShares
	// filters keeps parsed sync filters (filtercache.go).
	filters filterCache

	// The wallet and red envelopes (envelopes_handlers.go); static after New.
	wallet    *wallet.Service
	envelopes *envelopes.Service
}

// New builds the API.
func New(cfg Config, d Deps) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxSyncTimeout <= 0 {
		cfg.MaxSyncTimeout = 60 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if cfg.MaxConcurrentFullSyncs <= 0 {
		cfg.MaxConcurrentFullSyncs = 2
	}
	if d.PushRules == nil {
		var pub pushrules.Publisher // stays a nil interface without rooms
		if d.Rooms != nil {
			pub = d.Rooms
		}
		d.PushRules = pushrules.New(d.Store, pub, d.Logger, 0)
	}
	d = withDomainServices(cfg, d)
	if d.KeyBackup == nil {
		d.KeyBackup = keybackup.New(d.Store, keybackup.Config{})
	}
	if d.Relations == nil && d.Store != nil && d.Rooms != nil {
		d.Relations = relations.New(d.Store, d.Rooms)
	}
	if d.Search == nil && d.Store != nil && d.Rooms != nil {
		d.Search = search.New(d.Store, d.Rooms, d.Rooms)
	}
	exempt := map[string]bool{}
	for _, u := range cfg.RateExempt {
		exempt[u] = true
	}
	a := &API{cfg: cfg, store: d.Store, rooms: d.Rooms, n: d.Notifier, syncer: d.Syncer, pres: d.Presence,
		media: d.Media, hasher: d.Hasher, log: d.Logger, exempt: exempt, graph: d.Graph, contacts: d.Contacts, desks: d.Desks, wallet: d.Wallet, envelopes: d.Envelopes, channels: d.Channels, moments: d.Moments, todev: d.ToDevice, pushRules: d.PushRules,
		profiles: d.Profiles, devices: d.Devices, keys: d.Keys, directory: d.Directory, keyBackup: d.KeyBackup, rel: d.Relations, remote: d.Remote, searcher: d.Search, push: d.Push,
		tokens: newTokenCache(100_000), uia: newUIASessions(), fullSyncs: make(chan struct{}, cfg.MaxConcurrentFullSyncs)}
	a.admin = newAdmin(cfg, d, a.tokens)
	a.misc = newClientMisc(d)
	if d.Store != nil { // not a typed nil in the interfaces
		a.receipts, a.tsEvents = d.Store, d.Store
	}
	a.sliding = inbox.NewSliding(d.Syncer)
	a.metrics = d.Metrics
	a.backfill = d.Backfill
	return a
}

// session is an authenticated request's identity.
type session struct {
	UserID   string
	DeviceID string
	IsAdmin  bool
	// deviceKey keys the per-device flood guard, built once when the token
	// is resolved so that cached requests do not concatenate it again.
	deviceKey string
}

// handlerFunc is an authenticated handler: it returns an error instead of
// writing one, so errors reach the wire in exactly one place.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// authed wraps h with access-token authentication and the per-user limit.
func (a *API) authed(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := a.authenticate(r)
		if err != nil {
			apierr.Write(w, err)
			return
		}
		if err := a.limitDevice(s); err != nil {
			apierr.Write(w, err)
			return
		}
		if err := h(w, r, s); err != nil {
			a.fail(w, r, err)
		}
	}
}

// authedUnlimited authenticates without taking a token from the user's
// bucket, for /sync: a client keeps one long-poll open per device at all
// times, and counting it would starve the same user's sends.
func (a *API) authedUnlimited(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := a.authenticate(r)
		if err != nil {
			apierr.Write(w, err)
			return
		}
		if err := h(w, r, s); err != nil {
			a.fail(w, r, err)
		}
	}
}

// open wraps an unauthenticated handler.
func (a *API) open(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	}
}

// limitDevice applies the per-device flood guard. It is keyed by device,
// not user, so one runaway client does not lock its user's other devices
// out; the user-wide limits are per action (rooms.ActionLimits).
func (a *API) limitDevice(s *session) error {
	if a.cfg.DeviceLimiter == nil || a.exempt[s.UserID] {
		return nil
	}
	key := s.deviceKey
	if key == "" {
		key = s.UserID + "|" + s.DeviceID
	}
	if ok, retry := a.cfg.DeviceLimiter.Allow(key, time.Now()); !ok {
		return apierr.LimitExceeded(retry.Milliseconds() + 1)
	}
	return nil
}

// fail maps domain errors to Matrix errors, and logs internal faults once.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apierr.Error
	var limited *rooms.RateLimitError
	var refused *ratelimit.Error
	if de := domainError(err); de != nil {
		ae = de
	}
	switch {
	case ae != nil:
	case errors.As(err, &ae):
	case errors.Is(err, rooms.ErrForbidden):
		ae = apierr.Forbidden(reason(err))
	case errors.Is(err, rooms.ErrUnknownRoom):
		ae = apierr.Forbidden("You are not in this room, or it does not exist")
	case errors.Is(err, rooms.ErrNotFound), errors.Is(err, storage.ErrNotFound):
		ae = apierr.NotFound(reason(err))
	case errors.Is(err, rooms.ErrInvalid):
		ae = apierr.BadJSON(reason(err))
	case errors.Is(err, rooms.ErrInvalidParam):
		ae = apierr.InvalidParam(reason(err))
	case errors.Is(err, rooms.ErrTooLarge):
		ae = apierr.TooLarge(reason(err))
	case errors.Is(err, rooms.ErrBadRoomVersion):
		ae = apierr.New(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", reason(err))
	case errors.As(err, &limited):
		ae = apierr.LimitExceeded(limited.RetryAfter.Milliseconds() + 1)
	case errors.As(err, &refused):
		ae = apierr.LimitExceeded(refused.RetryAfter.Milliseconds() + 1)
	case errors.Is(err, rooms.ErrBusy):
		ae = apierr.LimitExceeded(rooms.RetryAfter)
	case errors.Is(err, rooms.ErrOverloaded):
		ae = &apierr.Error{Status: http.StatusServiceUnavailable, Code: "M_UNKNOWN", Message: "The server is busy; retry later", RetryAfterMs: rooms.RetryAfter}
	case errors.Is(err, rooms.ErrRoomInUse):
		ae = apierr.New(http.StatusBadRequest, "M_ROOM_IN_USE", "Room alias already taken")
	case errors.Is(err, storage.ErrUnstorable):
		ae = apierr.InvalidParam("Parley cannot store this text: " + err.Error())
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = apierr.Unknown("Internal server error")
	}
	apierr.Write(w, ae)
}

// reason is the human-readable part of a wrapped domain error.
func reason(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{rooms.ErrForbidden, rooms.ErrNotFound, rooms.ErrInvalid, rooms.ErrInvalidParam, rooms.ErrTooLarge, rooms.ErrBadRoomVersion, rooms.ErrUnknownRoom} {
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	}
	if msg == "" {
		return "Forbidden"
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// readJSON decodes a request body into v, enforcing the size limit and
// telling M_NOT_JSON (not JSON at all) from M_BAD_JSON (wrong shape).
func (a *API) readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, a.cfg.MaxBodyBytes+1))
	if err != nil {
		return apierr.BadJSON("Could not read request body")
	}
	if int64(len(body)) > a.cfg.MaxBodyBytes {
		return apierr.TooLarge(fmt.Sprintf("Request body is larger than %d bytes", a.cfg.MaxBodyBytes))
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		return apierr.NotJSON("Request body is not valid JSON")
	}
	if err := checkDepth(body, maxJSONDepth); err != nil {
		return apierr.BadJSON(err.Error())
	}
	if err := storetext.CheckJSON(body); err != nil {
		return apierr.BadJSON("Request body has a string Parley cannot store: " + err.Error())
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apierr.BadJSON("Request body has the wrong shape: " + err.Error())
	}
	return nil
}

// readObject reads a body that must be a JSON object and returns it raw.
func (a *API) readObject(r *http.Request) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := a.readJSON(r, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, apierr.BadJSON("Request body must be a JSON object")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, apierr.BadJSON("Request body must be a JSON object")
	}
	return body, nil
}

const maxJSONDepth = 64

// checkDepth refuses JSON nested deeper than max, before decoding it.
func checkDepth(body []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("JSON is nested more than %d levels deep", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	apierr.WriteJSON(w, http.StatusOK, v)
	return nil
}

// writeRaw sends a JSON body. A failed write means the client has gone:
// there is no one to tell, and the header is already out, so it is not an
// error for fail to answer.
func writeRaw(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	return nil
}

var emptyObject = json.RawMessage(`{}`)

// clientIP is the address a request came from. A loopback peer is taken to
// be a reverse proxy on this host, so the last X-Forwarded-For entry (the
// address the proxy saw) is used instead; from any other peer the header
// is ignored, since a client could forge it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if peer, err := netip.ParseAddr(host); err == nil && peer.IsLoopback() {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if fwd, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				return fwd.String()
			}
		}
	}
	return host
}

// limitKey groups IPv6 clients by /64, the block one subscriber usually
// holds, so rotating addresses within it does not escape the limit.
func limitKey(ip string) (key string, loopback bool) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip, false
	}
	if addr.IsLoopback() {
		return ip, true
	}
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return p.String(), false
	}
	return addr.Unmap().String(), false
}

// param returns a path parameter, percent-decoded (room and event IDs
// arrive encoded).
func param(r *http.Request, name string) string {
	raw := chi.URLParam(r, name)
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}
