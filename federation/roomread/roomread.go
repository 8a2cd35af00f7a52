// Package roomread serves other servers' reads of room data over
// federation: event, state, state_ids, event_auth, backfill and
// get_missing_events. It parses requests and shapes answers as the
// server-server spec has them; who may read what (server ACL, membership,
// history visibility) is decided by the room service (rooms/serverread.go),
// so every route to room data runs the same rule.
package roomread

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

// Rooms is what the handlers need of the room service (*rooms.Service).
type Rooms interface {
	ServerEvent(ctx context.Context, server, eventID string) (rooms.ServerPDU, error)
	ServerStateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error)
	ServerAuthChain(ctx context.Context, server, roomID, eventID string) ([]string, error)
	ServerPDUs(ctx context.Context, roomID string, ids []string) ([]json.RawMessage, error)
	ServerBackfill(ctx context.Context, server, roomID string, from []string, limit int) ([]rooms.ServerPDU, error)
	ServerMissingEvents(ctx context.Context, server, roomID string, earliest, latest []string, limit int, minDepth int64) ([]rooms.ServerPDU, error)
}

// Config configures the handlers. Static after New.
type Config struct {
	ServerName string
	Rooms      Rooms
	// Origin returns the server the X-Matrix middleware authenticated.
	Origin func(*http.Request) (string, bool)
	Log    *slog.Logger
	// Now is the clock for origin_server_ts; nil means time.Now.
	Now func() time.Time
}

// Handler serves the routes. Static after New; safe for concurrent use.
type Handler struct{ cfg Config }

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg}
}

// Mount adds the routes to r, which must sit behind the X-Matrix check.
func (h *Handler) Mount(r chi.Router) {
	r.Get("/_matrix/federation/v1/event/{eventId}", h.event)
	r.Get("/_matrix/federation/v1/state/{roomId}", h.state)
	r.Get("/_matrix/federation/v1/state_ids/{roomId}", h.stateIDs)
	r.Get("/_matrix/federation/v1/event_auth/{roomId}/{eventId}", h.eventAuth)
	r.Get("/_matrix/federation/v1/backfill/{roomId}", h.backfill)
	r.Post("/_matrix/federation/v1/get_missing_events/{roomId}", h.missingEvents)
}

// param returns a path parameter, unescaped.
func param(r *http.Request, name string) string {
	raw := chi.URLParam(r, name)
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}

// origin returns the authenticated origin, or writes 401.
func (h *Handler) origin(w http.ResponseWriter, r *http.Request) (string, bool) {
	o, ok := h.cfg.Origin(r)
	if !ok || o == "" {
		apierr.Write(w, apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing or bad X-Matrix authorization"))
		return "", false
	}
	return o, true
}

// fail maps the room service's errors to the spec's.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, rooms.ErrForbidden):
		apierr.Write(w, apierr.Forbidden(errText(err)))
	case errors.Is(err, rooms.ErrUnknownRoom), errors.Is(err, rooms.ErrNotFound):
		apierr.Write(w, apierr.NotFound(errText(err)))
	case errors.Is(err, context.Canceled):
		apierr.Write(w, apierr.Unknown("Request cancelled"))
	default:
		h.cfg.Log.Error("federation: room read", "path", r.URL.Path, "err", err)
		apierr.Write(w, apierr.Unknown("Internal error"))
	}
}

// errText is the message of a domain error, without the sentinel's prefix.
func errText(err error) string { return err.Error() }

func (h *Handler) roomParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := param(r, "roomId")
	if !pdu.ValidRoomID(room) {
		apierr.Write(w, apierr.InvalidParam("Invalid room ID"))
		return "", false
	}
	return room, true
}

func (h *Handler) eventParam(w http.ResponseWriter, id string) bool {
	if !pdu.ValidEventID(id) {
		apierr.Write(w, apierr.InvalidParam("Invalid event ID"))
		return false
	}
	return true
}

// pduList is the shape of /event and /backfill answers.
type pduList struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
}

func (h *Handler) list(pdus []rooms.ServerPDU) pduList {
	out := pduList{Origin: h.cfg.ServerName, OriginServerTS: h.cfg.Now().UnixMilli(), PDUs: make([]json.RawMessage, len(pdus))}
	for i, p := range pdus {
		out.PDUs[i] = p.PDU
	}
	return out
}

// event is GET /_matrix/federation/v1/event/{eventId}.
func (h *Handler) event(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	id := param(r, "eventId")
	if !h.eventParam(w, id) {
		return
	}
	p, err := h.cfg.Rooms.ServerEvent(r.Context(), origin, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, h.list([]rooms.ServerPDU{p}))
}

// stateQuery reads the room and event_id of /state and /state_ids.
func (h *Handler) stateQuery(w http.ResponseWriter, r *http.Request) (origin, room, event string, ok bool) {
	if origin, ok = h.origin(w, r); !ok {
		return
	}
	if room, ok = h.roomParam(w, r); !ok {
		return
	}
	event = r.URL.Query().Get("event_id")
	if event == "" {
		apierr.Write(w, apierr.MissingParam("Missing event_id"))
		return "", "", "", false
	}
	if ok = h.eventParam(w, event); !ok {
		return
	}
	return origin, room, event, true
}

// stateIDs is GET /_matrix/federation/v1/state_ids/{roomId}?event_id=.
func (h *Handler) stateIDs(w http.ResponseWriter, r *http.Request) {
	origin, room, event, ok := h.stateQuery(w, r)
	if !ok {
		return
	}
	state, chain, err := h.cfg.Rooms.ServerStateIDs(r.Context(), origin, room, event)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string][]string{"pdu_ids": nonNil(state), "auth_chain_ids": nonNil(chain)})
}

// state is GET /_matrix/federation/v1/state/{roomId}?event_id=.
func (h *Handler) state(w http.ResponseWriter, r *http.Request) {
	origin, room, event, ok := h.stateQuery(w, r)
	if !ok {
		return
	}
	state, chain, err := h.cfg.Rooms.ServerStateIDs(r.Context(), origin, room, event)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	pdus, err := h.cfg.Rooms.ServerPDUs(r.Context(), room, state)
	if err == nil {
		var authPDUs []json.RawMessage
		if authPDUs, err = h.cfg.Rooms.ServerPDUs(r.Context(), room, chain); err == nil {
			apierr.WriteJSON(w, http.StatusOK, map[string][]json.RawMessage{"pdus": pdus, "auth_chain": authPDUs})
			return
		}
	}
	h.fail(w, r, err)
}

// eventAuth is GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}.
func (h *Handler) eventAuth(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	room, ok := h.roomParam(w, r)
	if !ok {
		return
	}
	event := param(r, "eventId")
	if !h.eventParam(w, event) {
		return
	}
	chain, err := h.cfg.Rooms.ServerAuthChain(r.Context(), origin, room, event)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	pdus, err := h.cfg.Rooms.ServerPDUs(r.Context(), room, chain)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string][]json.RawMessage{"auth_chain": pdus})
}

// maxFromEvents bounds the v (and earliest/latest) lists a request names.
const maxFromEvents = 100

// backfill is GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=N.
func (h *Handler) backfill(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	room, ok := h.roomParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		apierr.Write(w, apierr.MissingParam("Missing v"))
		return
	}
	if len(from) > maxFromEvents {
		apierr.Write(w, apierr.InvalidParam("Too many v"))
		return
	}
	for _, id := range from {
		if !h.eventParam(w, id) {
			return
		}
	}
	ls := q.Get("limit")
	if ls == "" {
		apierr.Write(w, apierr.MissingParam("Missing limit"))
		return
	}
	limit, err := strconv.Atoi(ls)
	if err != nil || limit < 0 {
		apierr.Write(w, apierr.InvalidParam("limit must be a non-negative integer"))
		return
	}
	pdus, err := h.cfg.Rooms.ServerBackfill(r.Context(), origin, room, from, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, h.list(pdus))
}

// MissingEventsRequest is the body of POST get_missing_events.
type MissingEventsRequest struct {
	EarliestEvents []string `json:"earliest_events"`
	LatestEvents   []string `json:"latest_events"`
	Limit          int      `json:"limit"`
	MinDepth       int64    `json:"min_depth"`
}

// maxMissingBody bounds the request body (ids only).
const maxMissingBody = 64 << 10

// ParseMissingEvents reads and checks a get_missing_events body.
func ParseMissingEvents(body []byte) (MissingEventsRequest, *apierr.Error) {
	var req MissingEventsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(body) {
			return req, apierr.NotJSON("Body is not JSON")
		}
		return req, apierr.BadJSON("Bad get_missing_events body: " + err.Error())
	}
	if len(req.LatestEvents) == 0 {
		return req, apierr.BadJSON("latest_events is required")
	}
	if len(req.EarliestEvents) > maxFromEvents || len(req.LatestEvents) > maxFromEvents {
		return req, apierr.BadJSON("Too many events named")
	}
	for _, list := range [][]string{req.EarliestEvents, req.LatestEvents} {
		for _, id := range list {
			if !pdu.ValidEventID(id) {
				return req, apierr.BadJSON("Invalid event ID")
			}
		}
	}
	if req.Limit < 0 {
		return req, apierr.BadJSON("limit must not be negative")
	}
	return req, nil
}

// missingEvents is POST /_matrix/federation/v1/get_missing_events/{roomId}.
func (h *Handler) missingEvents(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	room, ok := h.roomParam(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMissingBody+1))
	if err != nil {
		apierr.Write(w, apierr.BadJSON("Could not read body"))
		return
	}
	if len(body) > maxMissingBody {
		apierr.Write(w, apierr.TooLarge("Body too large"))
		return
	}
	req, aerr := ParseMissingEvents(body)
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	pdus, err := h.cfg.Rooms.ServerMissingEvents(r.Context(), origin, room, req.EarliestEvents, req.LatestEvents, req.Limit, req.MinDepth)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	events := make([]json.RawMessage, len(pdus))
	for i, p := range pdus {
		events[i] = p.PDU
	}
	apierr.WriteJSON(w, http.StatusOK, map[string][]json.RawMessage{"events": events})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
