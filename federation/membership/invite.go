package membership

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// inviteBody is the body of PUT /_matrix/federation/v2/invite.
type inviteBody struct {
	Event           json.RawMessage   `json:"event"`
	InviteRoomState []json.RawMessage `json:"invite_room_state"`
	RoomVersion     string            `json:"room_version"`
}

// maxInviteState bounds invite_room_state: the spec's stripped state is a
// handful of events.
const maxInviteState = 50

// invite is PUT /_matrix/federation/v2/invite/{roomId}/{eventId}: another
// server invites a user of ours. The invitee must be local and the same
// policy a local invite runs must accept it (rooms.CheckInviteFrom); then
// this server signs the event and, unless it is in the room already (the
// invite then also arrives through /send), keeps the invite with the
// stripped state for the invitee's sync (rooms.PersistJoined, Invite).
func (h *Resident) invite(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.origin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	roomID, eventID := param(r, "roomId"), param(r, "eventId")
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		apierr.Write(w, apierr.TooLarge("Body too large"))
		return
	}
	var body inviteBody
	if err := json.Unmarshal(raw, &body); err != nil {
		apierr.Write(w, apierr.BadJSON("Bad invite body: "+err.Error()))
		return
	}
	version := body.RoomVersion
	if version == "" {
		version = "1"
	}
	if !pdu.Supported(version) {
		apierr.Write(w, &apierr.Error{Status: http.StatusBadRequest, Code: "M_INCOMPATIBLE_ROOM_VERSION",
			Message: "This server does not support room version " + version, Extra: map[string]any{"room_version": version}})
		return
	}
	if len(body.InviteRoomState) > maxInviteState {
		apierr.Write(w, apierr.BadJSON("invite_room_state is too long"))
		return
	}
	ev, err := pdu.Parse(body.Event, version)
	if err != nil {
		apierr.Write(w, apierr.BadJSON("Bad event: "+err.Error()))
		return
	}
	switch {
	case ev.ID != eventID:
		apierr.Write(w, apierr.BadJSON("The event's ID is "+ev.ID+", not the one in the path"))
		return
	case ev.RoomID != roomID:
		apierr.Write(w, apierr.BadJSON("The event is in room "+ev.RoomID+", not the one in the path"))
		return
	case ev.Type != "m.room.member" || ev.StateKey == nil || gjson.GetBytes(ev.Content, "membership").Str != "invite":
		apierr.Write(w, apierr.BadJSON("Not an invite"))
		return
	case pdu.Domain(*ev.StateKey) != h.cfg.ServerName:
		apierr.Write(w, apierr.BadJSON("The invitee is not a user of this server"))
		return
	case pdu.Domain(ev.Sender) != origin:
		apierr.Write(w, apierr.Forbidden("The inviter is not of "+origin))
		return
	}
	if err := checks.VerifySignatures(ctx, h.cfg.Keys, version, ev); err != nil {
		apierr.Write(w, apierr.Forbidden("Bad signature: "+err.Error()))
		return
	}
	if err := h.cfg.Rooms.CheckInviteFrom(ctx, roomID, ev.Sender, *ev.StateKey); err != nil {
		h.writeErr(w, err)
		return
	}
	signed, err := ev.AddSignature(version, h.cfg.Key)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	resident, err := h.cfg.Rooms.Resident(ctx, roomID)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	if !resident {
		rj := rooms.RemoteJoin{RoomID: roomID, Version: version, Join: signed, Invite: true, State: map[authrules.StateKey]string{}}
		for _, s := range body.InviteRoomState {
			// Full PDUs (MSC4311) are kept when they check out; stripped
			// events of older servers cannot be, and are left out.
			se, err := pdu.Parse(s, version)
			if err != nil || se.RoomID != roomID || se.StateKey == nil {
				continue
			}
			if checks.VerifySignatures(ctx, h.cfg.Keys, version, se) != nil {
				continue
			}
			rj.Events = append(rj.Events, se)
			rj.State[authrules.StateKey{Type: se.Type, StateKey: *se.StateKey}] = se.ID
		}
		if _, err := h.cfg.Rooms.PersistJoined(ctx, rj); err != nil {
			h.writeErr(w, err)
			return
		}
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]json.RawMessage{"event": signed.Raw})
}
