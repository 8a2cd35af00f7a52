// Package membership is federation's side of joins, leaves and invites
// across servers (issue 11): the resident server's make_join, send_join
// v2, make_leave and send_leave v2 (this file), and the joining server's
// half (joiner.go), which the client API calls for rooms this server is
// not in. The rules stay in package rooms: the templates come from
// rooms.Service.MakeMember, the events a remote server sends back run the
// inbound pipeline (rooms/inbound), and a joined room is stored by
// rooms.Service.PersistJoined.
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"

	"github.com/go-chi/chi/v5"
	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/federation/serveracl"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// maxBody bounds a send_join, send_leave or invite body: one PDU (64 KiB)
// and, for invites, the stripped state.
const maxBody = 1 << 20

// heroes is how many members an omit_members answer keeps (MSC3706): as
// many as a room summary names.
const heroes = 5

// Config is what the resident handlers need. Static after NewResident.
type Config struct {
	ServerName string
	Key        *pdu.SigningKey
	// Origin returns the server the X-Matrix middleware authenticated.
	Origin func(*http.Request) (string, bool)
	Rooms  *rooms.Service
	// Keys verify other servers' signatures (federation/keys.Keyring).
	Keys checks.Keys
	Log  *slog.Logger
}

// Resident serves the resident server's half of joins and leaves.
type Resident struct {
	cfg Config // static
}

// NewResident returns the handlers; Mount adds their routes.
func NewResident(cfg Config) *Resident {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Resident{cfg: cfg}
}

// Mount adds the routes to the federation router's authenticated part.
func (h *Resident) Mount(r chi.Router) {
	r.Get("/_matrix/federation/v1/make_join/{roomId}/{userId}", h.makeJoin)
	r.Put("/_matrix/federation/v2/send_join/{roomId}/{eventId}", h.sendJoin)
	r.Get("/_matrix/federation/v1/make_leave/{roomId}/{userId}", h.makeLeave)
	r.Put("/_matrix/federation/v2/send_leave/{roomId}/{eventId}", h.sendLeave)
	r.Put("/_matrix/federation/v2/invite/{roomId}/{eventId}", h.invite)
	r.Get("/_matrix/federation/v1/make_knock/{roomId}/{userId}", h.makeKnock)  // knock.go
	r.Put("/_matrix/federation/v1/send_knock/{roomId}/{eventId}", h.sendKnock) // knock.go
}

func (h *Resident) origin(w http.ResponseWriter, r *http.Request) (string, bool) {
	o, ok := h.cfg.Origin(r)
	if !ok || o == "" {
		apierr.Write(w, apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing or bad X-Matrix authorization"))
		return "", false
	}
	return o, true
}

// checkACL refuses an origin the room's m.room.server_acl denies.
func (h *Resident) checkACL(ctx context.Context, roomID, origin string) error {
	src := h.cfg.Rooms.InboundStore()
	k := authrules.StateKey{Type: "m.room.server_acl"}
	cur, _, err := src.Current(ctx, roomID, []authrules.StateKey{k})
	if err != nil {
		return err
	}
	id, ok := cur[k]
	if !ok {
		return nil
	}
	stored, err := src.Events(ctx, []string{id})
	if err != nil {
		return err
	}
	if len(stored) == 1 && stored[0].Event != nil && !serveracl.Parse(stored[0].Event.Content).Allowed(origin) {
		return apierr.Forbidden("The room's server ACL denies " + origin)
	}
	return nil
}

func (h *Resident) makeJoin(w http.ResponseWriter, r *http.Request) {
	h.makeMember(w, r, "join")
}

func (h *Resident) makeLeave(w http.ResponseWriter, r *http.Request) {
	h.makeMember(w, r, "leave")
}

func (h *Resident) makeMember(w http.ResponseWriter, r *http.Request, membership string) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	roomID, user := param(r, "roomId"), param(r, "userId")
	if !pdu.ValidUserID(user) || !pdu.ValidRoomID(roomID) {
		apierr.Write(w, apierr.InvalidParam("Invalid room or user ID"))
		return
	}
	if pdu.Domain(user) != origin {
		apierr.Write(w, apierr.Forbidden(fmt.Sprintf("%s may not make a %s for %s", origin, membership, user)))
		return
	}
	ctx := r.Context()
	if membership == "join" || membership == "knock" {
		version, err := h.cfg.Rooms.RoomVersion(ctx, roomID)
		if err != nil {
			h.writeErr(w, err)
			return
		}
		// No ver means ["1"] (the spec's default).
		vers := r.URL.Query()["ver"]
		if len(vers) == 0 {
			vers = []string{"1"}
		}
		if !slices.Contains(vers, version) {
			apierr.Write(w, &apierr.Error{Status: http.StatusBadRequest, Code: "M_INCOMPATIBLE_ROOM_VERSION",
				Message: "Your server does not support this room's version " + version, Extra: map[string]any{"room_version": version}})
			return
		}
	}
	if err := h.checkACL(ctx, roomID, origin); err != nil {
		h.writeErr(w, err)
		return
	}
	version, tmpl, err := h.cfg.Rooms.MakeMember(ctx, roomID, user, membership)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"room_version": version, "event": tmpl})
}

// writeErr maps the room service's errors to Matrix errors.
func (h *Resident) writeErr(w http.ResponseWriter, err error) {
	var ae *apierr.Error
	switch {
	case errors.As(err, &ae):
		apierr.Write(w, ae)
	case errors.Is(err, rooms.ErrUnknownRoom), errors.Is(err, rooms.ErrNotResident), errors.Is(err, checks.ErrUnknownRoom):
		apierr.Write(w, apierr.NotFound("This server is not in that room"))
	case errors.Is(err, rooms.ErrForbidden):
		apierr.Write(w, apierr.Forbidden(err.Error()))
	case errors.Is(err, rooms.ErrInvalid), errors.Is(err, checks.ErrDropped):
		apierr.Write(w, apierr.BadJSON(err.Error()))
	default:
		h.cfg.Log.Warn("federation membership", "err", err)
		apierr.Write(w, apierr.Unknown("Internal server error"))
	}
}

// readEvent reads and checks the PDU of send_join or send_leave: in the
// path's room, with the path's ID, a member event of a user of origin
// about themselves, with the wanted membership.
func (h *Resident) readEvent(w http.ResponseWriter, r *http.Request, origin, membership string) (string, *pdu.Event, bool) {
	roomID, eventID := param(r, "roomId"), param(r, "eventId")
	ctx := r.Context()
	version, err := h.cfg.Rooms.RoomVersion(ctx, roomID)
	if err != nil {
		h.writeErr(w, err)
		return "", nil, false
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		apierr.Write(w, apierr.TooLarge("Body too large"))
		return "", nil, false
	}
	ev, err := pdu.Parse(raw, version)
	if err != nil {
		apierr.Write(w, apierr.BadJSON("Bad event: "+err.Error()))
		return "", nil, false
	}
	switch {
	case ev.ID != eventID:
		apierr.Write(w, apierr.BadJSON("The event's ID is "+ev.ID+", not the one in the path"))
	case ev.RoomID != roomID:
		apierr.Write(w, apierr.BadJSON("The event is in room "+ev.RoomID+", not the one in the path"))
	case ev.Type != "m.room.member" || ev.StateKey == nil || *ev.StateKey != ev.Sender:
		apierr.Write(w, apierr.BadJSON("Not a member event of its sender"))
	case pdu.Domain(ev.Sender) != origin:
		apierr.Write(w, apierr.Forbidden("The event's sender is not of "+origin))
	case gjson.GetBytes(ev.Content, "membership").Str != membership:
		apierr.Write(w, apierr.BadJSON("The event's membership is not "+membership))
	default:
		return version, ev, true
	}
	return "", nil, false
}

// accept runs the inbound pipeline on ev, storing it as taken for origin.
// A rejected or soft-failed event is refused with 403.
func (h *Resident) accept(ctx context.Context, origin string, ev *pdu.Event) (*checks.Verdict, error) {
	src := h.cfg.Rooms.InboundStore()
	p := checks.New(src, h.cfg.Keys, src.OnBehalfOf(origin))
	v, _, err := p.Accept(ctx, ev.Raw)
	if errors.Is(err, checks.ErrAlreadyHeld) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, checks.ErrDropped) {
			return nil, apierr.Forbidden("The event failed its format or signature checks: " + err.Error())
		}
		if errors.Is(err, checks.ErrMissing) {
			return nil, apierr.Forbidden("The event cites events this server does not hold: " + err.Error())
		}
		return nil, err
	}
	if v.Kind != checks.Accepted {
		return nil, apierr.Forbidden(fmt.Sprintf("The event was %s: %s", v.Kind, v.Reason))
	}
	return v, nil
}

func (h *Resident) sendJoin(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	version, ev, ok := h.readEvent(w, r, origin, "join")
	if !ok {
		return
	}
	if err := h.checkACL(ctx, ev.RoomID, origin); err != nil {
		h.writeErr(w, err)
		return
	}
	// A restricted join names a local user who authorised it: this server
	// signs it too (the auth rules want that signature).
	if via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server"); via.Type == gjson.String {
		if pdu.Domain(via.Str) != h.cfg.ServerName {
			apierr.Write(w, apierr.Forbidden("The join is authorised by a user of another server"))
			return
		}
		signed, err := ev.AddSignature(version, h.cfg.Key)
		if err != nil {
			h.writeErr(w, err)
			return
		}
		ev = signed
	}
	v, err := h.accept(ctx, origin, ev)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	var before checks.StateMap
	if v != nil {
		before = v.StateBefore
	} else if before, err = h.stateBefore(ctx, ev); err != nil {
		h.writeErr(w, err)
		return
	}
	omit := r.URL.Query().Get("omit_members") == "true"
	resp, err := h.joinAnswer(ctx, ev, before, omit)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, resp)
}

// stateBefore is the state before an event already held: the state after
// its first prev event (the join of a retried send_join).
func (h *Resident) stateBefore(ctx context.Context, ev *pdu.Event) (checks.StateMap, error) {
	if len(ev.PrevEvents) == 0 {
		return checks.StateMap{}, nil
	}
	return h.cfg.Rooms.StateAfterEvent(ctx, ev.PrevEvents[0])
}

// sendJoinResponse is the send_join v2 answer.
type sendJoinResponse struct {
	State          []json.RawMessage `json:"state"`
	AuthChain      []json.RawMessage `json:"auth_chain"`
	Event          json.RawMessage   `json:"event"`
	MembersOmitted bool              `json:"members_omitted,omitempty"`
	ServersInRoom  []string          `json:"servers_in_room"`
	Origin         string            `json:"origin"`
}

// joinAnswer builds send_join's answer from the state before the join.
// With omit (MSC3706) the member events are left out but for a few heroes
// (and the joiner's own), so a big room's join is small; the auth chain
// then covers only what is sent.
func (h *Resident) joinAnswer(ctx context.Context, join *pdu.Event, before checks.StateMap, omit bool) (*sendJoinResponse, error) {
	keys := make([]authrules.StateKey, 0, len(before))
	for k := range before {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Type != keys[j].Type {
			return keys[i].Type < keys[j].Type
		}
		return keys[i].StateKey < keys[j].StateKey
	})
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, before[k])
	}
	stored, err := h.cfg.Rooms.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]dag.StoredPDU, len(stored))
	for _, st := range stored {
		byID[st.EventID] = st
	}
	resp := &sendJoinResponse{Event: join.Raw, Origin: h.cfg.ServerName, State: []json.RawMessage{}, AuthChain: []json.RawMessage{}}
	servers := map[string]bool{h.cfg.ServerName: true, pdu.Domain(join.Sender): true}
	kept := 0
	var sent []string
	for _, k := range keys {
		st, ok := byID[before[k]]
		if !ok {
			continue
		}
		if k.Type == "m.room.member" {
			joined := gjson.GetBytes(st.PDU, "content.membership").Str == "join"
			if joined {
				servers[pdu.Domain(k.StateKey)] = true
			}
			if omit && k.StateKey != join.Sender {
				if !joined || kept >= heroes {
					resp.MembersOmitted = true
					continue
				}
				kept++
			}
		}
		resp.State = append(resp.State, st.PDU)
		sent = append(sent, st.EventID)
	}
	chain, err := h.cfg.Rooms.AuthChain(ctx, append(sent, join.ID))
	if err != nil {
		return nil, err
	}
	for _, st := range chain {
		if st.Kind == dag.Rejected {
			continue
		}
		resp.AuthChain = append(resp.AuthChain, st.PDU)
	}
	for s := range servers {
		resp.ServersInRoom = append(resp.ServersInRoom, s)
	}
	sort.Strings(resp.ServersInRoom)
	return resp, nil
}

func (h *Resident) sendLeave(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	_, ev, ok := h.readEvent(w, r, origin, "leave")
	if !ok {
		return
	}
	if err := h.checkACL(ctx, ev.RoomID, origin); err != nil {
		h.writeErr(w, err)
		return
	}
	if _, err := h.accept(ctx, origin, ev); err != nil {
		h.writeErr(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{})
}
