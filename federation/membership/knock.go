package membership

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// Knocks across servers: the resident server's make_knock and send_knock
// (v1, the only version), and the knocking server's half, which the
// client API's /knock calls for a room this server is not in. The rules
// are the room service's and the auth rules', as for a join.

// maxKnockState bounds knock_room_state taken from a resident server: the
// stripped state is a handful of events.
const maxKnockState = 50

// makeKnock is GET /_matrix/federation/v1/make_knock/{roomId}/{userId}.
func (h *Resident) makeKnock(w http.ResponseWriter, r *http.Request) {
	h.makeMember(w, r, "knock")
}

// sendKnock is PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}:
// the knock runs the inbound pipeline (stored as taken for origin, so the
// room's other servers get it), and the answer gives the knocking server
// the room's stripped state as full PDUs (knock_room_state).
func (h *Resident) sendKnock(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	_, ev, ok := h.readEvent(w, r, origin, "knock")
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
	state, err := h.cfg.Rooms.KnockState(ctx, ev.RoomID, ev.Sender)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	out := make([]json.RawMessage, len(state))
	for i, s := range state {
		out[i] = s
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"knock_room_state": out})
}

// Knock knocks on roomID for user through the first of servers that lets
// it: make_knock, sign, send_knock, then keep the knock with the state the
// resident gave, as an invite is kept, so the user's sync shows the room
// under "knock". It returns the knock's event ID.
func (j *Joiner) Knock(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	var lastErr error = apierr.NotFound("No server to knock on " + roomID + " through")
	for _, srv := range dedupe(servers, j.cfg.ServerName) {
		evID, err := j.knockVia(ctx, srv, roomID, user, content)
		if err == nil {
			return evID, nil
		}
		j.cfg.Log.Info("remote knock failed", "room", roomID, "via", srv, "err", err)
		lastErr = err
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code == "M_FORBIDDEN" {
			return "", err // the room said no; another server will too
		}
	}
	return "", lastErr
}

func (j *Joiner) knockVia(ctx context.Context, srv, roomID, user string, content map[string]any) (string, error) {
	mk, err := j.cfg.Client.MakeKnock(ctx, &federation.ReqMakeKnock{RoomID: id.RoomID(roomID), UserID: id.UserID(user), Via: srv, SupportedVersions: supportedVersions})
	if err != nil {
		return "", remoteErr(err)
	}
	version := string(mk.RoomVersion)
	if !pdu.Supported(version) {
		return "", apierr.New(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "This server cannot knock on rooms of version "+version)
	}
	ev, err := j.signTemplate(mk.Event, version, roomID, user, "knock", content)
	if err != nil {
		return "", err
	}
	resp, err := j.cfg.Client.SendKnock(ctx, &federation.ReqSendKnock{RoomID: id.RoomID(roomID), EventID: id.EventID(ev.ID), Event: ev.Raw, Via: srv})
	if err != nil {
		return "", remoteErr(err)
	}
	rj := rooms.RemoteJoin{RoomID: roomID, Version: version, Join: ev, Invite: true, State: map[authrules.StateKey]string{}}
	for i, raw := range resp.KnockRoomState {
		if i >= maxKnockState {
			break
		}
		// Full PDUs are kept when they check out; stripped events of
		// servers that send them cannot be, and are left out, as for an
		// invite's state.
		se, err := pdu.Parse(raw, version)
		if err != nil || se.RoomID != roomID || se.StateKey == nil || (se.Type == "m.room.member" && *se.StateKey == user) {
			continue
		}
		if checks.VerifySignatures(ctx, j.cfg.Keys, version, se) != nil {
			continue
		}
		rj.Events = append(rj.Events, se)
		rj.State[authrules.StateKey{Type: se.Type, StateKey: *se.StateKey}] = se.ID
	}
	if _, err := j.cfg.Rooms.PersistJoined(ctx, rj); err != nil {
		return "", err
	}
	return ev.ID, nil
}
