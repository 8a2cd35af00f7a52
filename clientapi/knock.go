package clientapi

import (
	"errors"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
)

// knock is POST /knock/{roomIdOrAlias}: a request to join a room whose join
// rule is knock (room versions 7+) or knock_restricted (10+). Every check
// (join rule, bans, current membership, blocked rooms, the join limit) is
// the room service's, as for a join. Knocking over federation on a room
// this server is not in is not supported: such a room is unknown (404).
func (a *API) knock(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	roomID, _, err := a.resolveRoom(r.Context(), param(r, "roomIdOrAlias"))
	if err != nil {
		return err
	}
	_, err = a.rooms.ChangeMembership(r.Context(), rooms.MembershipRequest{
		RoomID: roomID, Sender: s.UserID, Target: s.UserID, Membership: "knock", Reason: req.Reason,
		Profile: a.profileOf(r.Context(), s.UserID),
	})
	if errors.Is(err, rooms.ErrUnknownRoom) {
		return apierr.NotFound("No known room " + roomID)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"room_id": roomID})
}
