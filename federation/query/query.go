// Package query serves other servers' questions about this server's users
// and rooms over federation: query/profile, query/directory, user/devices,
// user/keys/query, user/keys/claim and the public room directory. It parses
// requests and shapes answers as the server-server spec has them; the
// answers come from the domain services (profiles, devices, e2ekeys,
// directory), which decide what may be read, as they do for the client API.
package query

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Profiles reads local users' profiles (*profiles.Service).
type Profiles interface {
	Get(ctx context.Context, userID string) (profiles.Profile, error)
}

// Devices lists a local user's devices (*devices.Service).
type Devices interface {
	List(ctx context.Context, userID string) ([]storage.Device, error)
}

// Keys reads and claims local users' E2EE keys (*e2ekeys.Service).
type Keys interface {
	Query(ctx context.Context, viewer string, want map[string][]string) (e2ekeys.Keys, error)
	Claim(ctx context.Context, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error)
}

// Directory resolves aliases and lists public rooms (*directory.Service).
type Directory interface {
	Resolve(ctx context.Context, alias string) (roomID string, servers []string, err error)
	PublicRooms(ctx context.Context, server string, limit int, since string, f directory.Filter) (directory.Page, error)
}

// Config configures the handler. Static after New.
type Config struct {
	ServerName string
	Profiles   Profiles
	Devices    Devices
	Keys       Keys
	Directory  Directory
	// Origin returns the server the X-Matrix middleware authenticated.
	Origin func(*http.Request) (string, bool)
	// DeviceStream returns a local user's device-list stream ID, the last
	// one announced in m.device_list_update (federation/edus); nil serves 0.
	DeviceStream func(ctx context.Context, userID string) (int64, error)
	Log          *slog.Logger
}

// Handler serves the routes. Static after New; safe for concurrent use.
type Handler struct{ cfg Config }

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Handler{cfg: cfg}
}

// Mount adds the routes to r, which must sit behind the X-Matrix check.
func (h *Handler) Mount(r chi.Router) {
	r.Get("/_matrix/federation/v1/query/profile", h.wrap(h.profile))
	r.Get("/_matrix/federation/v1/query/directory", h.wrap(h.directory))
	r.Get("/_matrix/federation/v1/user/devices/{userId}", h.wrap(h.devices))
	r.Post("/_matrix/federation/v1/user/keys/query", h.wrap(h.keysQuery))
	r.Post("/_matrix/federation/v1/user/keys/claim", h.wrap(h.keysClaim))
	r.Get("/_matrix/federation/v1/publicRooms", h.wrap(h.publicRooms))
	r.Post("/_matrix/federation/v1/publicRooms", h.wrap(h.publicRoomsSearch))
}

// wrap checks the origin and writes a handler's error.
func (h *Handler) wrap(fn func(w http.ResponseWriter, r *http.Request, origin string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin, ok := h.cfg.Origin(r)
		if !ok || origin == "" {
			apierr.Write(w, apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing or bad X-Matrix authorization"))
			return
		}
		if err := fn(w, r, origin); err != nil {
			h.fail(w, r, err)
		}
	}
}

// fail maps domain errors to the spec's.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apierr.Error
	switch {
	case errors.As(err, &ae):
		apierr.Write(w, ae)
	case errors.Is(err, profiles.ErrNotFound), errors.Is(err, directory.ErrNotFound):
		apierr.Write(w, apierr.NotFound(err.Error()))
	case errors.Is(err, profiles.ErrInvalidParam), errors.Is(err, directory.ErrInvalidParam), errors.Is(err, e2ekeys.ErrInvalidParam):
		apierr.Write(w, apierr.InvalidParam(err.Error()))
	case errors.Is(err, directory.ErrMissingParam):
		apierr.Write(w, apierr.MissingParam(err.Error()))
	default:
		h.cfg.Log.Error("federation: query", "path", r.URL.Path, "err", err)
		apierr.Write(w, apierr.Unknown("Internal error"))
	}
}

// localUser checks that userID is a valid user of this server: a question
// about another server's user is a bad request, as in Synapse.
func (h *Handler) localUser(userID string) error {
	if userID == "" {
		return apierr.MissingParam("Missing user_id")
	}
	if !pdu.ValidUserID(userID) {
		return apierr.InvalidParam("Invalid user ID")
	}
	if pdu.Domain(userID) != h.cfg.ServerName {
		return apierr.InvalidParam("User is not hosted on this homeserver")
	}
	return nil
}

// profile is GET /_matrix/federation/v1/query/profile?user_id=&field=.
func (h *Handler) profile(w http.ResponseWriter, r *http.Request, _ string) error {
	q := r.URL.Query()
	userID, field := q.Get("user_id"), q.Get("field")
	if err := h.localUser(userID); err != nil {
		return err
	}
	p, err := h.cfg.Profiles.Get(r.Context(), userID)
	if err != nil {
		return err
	}
	out := map[string]string{}
	if p.DisplayName != "" && (field == "" || field == profiles.FieldDisplayName) {
		out[profiles.FieldDisplayName] = p.DisplayName
	}
	if p.AvatarURL != "" && (field == "" || field == profiles.FieldAvatarURL) {
		out[profiles.FieldAvatarURL] = p.AvatarURL
	}
	apierr.WriteJSON(w, http.StatusOK, out)
	return nil
}

// directory is GET /_matrix/federation/v1/query/directory?room_alias=.
func (h *Handler) directory(w http.ResponseWriter, r *http.Request, _ string) error {
	alias := r.URL.Query().Get("room_alias")
	if alias == "" {
		return apierr.MissingParam("Missing room_alias")
	}
	roomID, servers, err := h.cfg.Directory.Resolve(r.Context(), alias)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": servers})
	return nil
}

// device is one entry of user/devices.
type device struct {
	DeviceID    string          `json:"device_id"`
	DisplayName string          `json:"device_display_name,omitempty"`
	Keys        json.RawMessage `json:"keys,omitempty"`
}

// devices is GET /_matrix/federation/v1/user/devices/{userId}.
func (h *Handler) devices(w http.ResponseWriter, r *http.Request, _ string) error {
	userID := chi.URLParam(r, "userId")
	if v, err := url.PathUnescape(userID); err == nil {
		userID = v
	}
	if err := h.localUser(userID); err != nil {
		return err
	}
	ctx := r.Context()
	// The stream ID is read first: an update announced after it carries
	// what the list below may already show, which a receiver applies again
	// harmlessly; read after, it could name an update the list misses.
	var stream int64
	if h.cfg.DeviceStream != nil {
		var err error
		if stream, err = h.cfg.DeviceStream(ctx, userID); err != nil {
			return err
		}
	}
	list, err := h.cfg.Devices.List(ctx, userID)
	if err != nil {
		return err
	}
	keys, err := h.cfg.Keys.Query(ctx, "", map[string][]string{userID: nil})
	if err != nil {
		return err
	}
	devs := make([]device, 0, len(list))
	for _, d := range list {
		devs = append(devs, device{DeviceID: d.DeviceID, DisplayName: d.DisplayName, Keys: keys.DeviceKeys[userID][d.DeviceID]})
	}
	out := map[string]any{"user_id": userID, "stream_id": stream, "devices": devs}
	if k := keys.Master[userID]; k != nil {
		out["master_key"] = k
	}
	if k := keys.SelfSigning[userID]; k != nil {
		out["self_signing_key"] = k
	}
	apierr.WriteJSON(w, http.StatusOK, out)
	return nil
}

// maxBody bounds the JSON bodies these routes read.
const maxBody = 1 << 20

// readJSON decodes a bounded JSON body into v.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return apierr.BadJSON("Could not read body")
	}
	if len(body) > maxBody {
		return apierr.TooLarge("Body too large")
	}
	if !json.Valid(body) {
		return apierr.NotJSON("Body is not JSON")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apierr.BadJSON("Bad body: " + err.Error())
	}
	return nil
}

// KeysQueryRequest is the body of POST user/keys/query.
type KeysQueryRequest struct {
	DeviceKeys map[string][]string `json:"device_keys"`
}

// keysQuery is POST /_matrix/federation/v1/user/keys/query. Users of other
// servers are left out of the answer.
func (h *Handler) keysQuery(w http.ResponseWriter, r *http.Request, _ string) error {
	var req KeysQueryRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return apierr.BadJSON("device_keys is required")
	}
	want := make(map[string][]string, len(req.DeviceKeys))
	for u, devs := range req.DeviceKeys {
		if pdu.Domain(u) == h.cfg.ServerName {
			want[u] = devs
		}
	}
	keys, err := h.cfg.Keys.Query(r.Context(), "", want)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"device_keys": keys.DeviceKeys,
		"master_keys": keys.Master, "self_signing_keys": keys.SelfSigning})
	return nil
}

// KeysClaimRequest is the body of POST user/keys/claim.
type KeysClaimRequest struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
}

// keysClaim is POST /_matrix/federation/v1/user/keys/claim.
func (h *Handler) keysClaim(w http.ResponseWriter, r *http.Request, _ string) error {
	var req KeysClaimRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return apierr.BadJSON("one_time_keys is required")
	}
	got, err := h.cfg.Keys.Claim(r.Context(), req.OneTimeKeys)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"one_time_keys": got})
	return nil
}

// publicRooms is GET /_matrix/federation/v1/publicRooms?limit=&since=.
func (h *Handler) publicRooms(w http.ResponseWriter, r *http.Request, _ string) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return apierr.InvalidParam("limit must be a non-negative integer")
		}
		limit = n
	}
	return h.listRooms(w, r, limit, q.Get("since"), directory.Filter{})
}

// publicRoomsSearch is POST /_matrix/federation/v1/publicRooms, with a
// filter.
func (h *Handler) publicRoomsSearch(w http.ResponseWriter, r *http.Request, _ string) error {
	var req struct {
		Limit  int              `json:"limit"`
		Since  string           `json:"since"`
		Filter directory.Filter `json:"filter"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Limit < 0 {
		return apierr.InvalidParam("limit must not be negative")
	}
	return h.listRooms(w, r, req.Limit, req.Since, req.Filter)
}

func (h *Handler) listRooms(w http.ResponseWriter, r *http.Request, limit int, since string, f directory.Filter) error {
	page, err := h.cfg.Directory.PublicRooms(r.Context(), "", limit, since, f)
	if err != nil {
		return err
	}
	rooms := page.Rooms
	if rooms == nil {
		rooms = []directory.PublicRoom{}
	}
	out := map[string]any{"chunk": rooms, "total_room_count_estimate": page.TotalEstimate}
	if page.Next != "" {
		out["next_batch"] = page.Next
	}
	apierr.WriteJSON(w, http.StatusOK, out)
	return nil
}
