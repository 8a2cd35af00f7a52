package clientapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
)

// knock is POST /knock/{roomIdOrAlias}: a request to join a room whose join
// rule is knock (room versions 7+) or knock_restricted (10+). Every check
// (join rule, bans, current membership, blocked rooms, the join limit) is
// the room service's, as for a join. A room this server is not in is
// knocked on through a server in it (RemoteKnocker).
func (a *API) knock(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	roomID, aliasServers, err := a.resolveRoom(r.Context(), param(r, "roomIdOrAlias"))
	if err != nil {
		return err
	}
	_, err = a.rooms.ChangeMembership(r.Context(), rooms.MembershipRequest{
		RoomID: roomID, Sender: s.UserID, Target: s.UserID, Membership: "knock", Reason: req.Reason,
		Profile: a.profileOf(r.Context(), s.UserID),
	})
	if errors.Is(err, rooms.ErrUnknownRoom) {
		// ErrNotResident matches too: the knock goes through a server
		// in the room (make_knock, send_knock).
		k, ok := a.remote.(RemoteKnocker)
		if !ok {
			return apierr.NotFound("No known room " + roomID)
		}
		err = a.remoteKnock(r.Context(), r, k, roomID, s.UserID, aliasServers, req.Reason)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"room_id": roomID})
}

// RemoteKnocker knocks on rooms through other servers
// (federation/membership.Joiner); the client API's RemoteMembership has it
// when federation is on.
type RemoteKnocker interface {
	Knock(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error)
}

// remoteKnock knocks through another server after the room service said
// it cannot place the knock itself; the servers are a join's.
func (a *API) remoteKnock(ctx context.Context, r *http.Request, k RemoteKnocker, roomID, user string, aliasServers []string, reason string) error {
	content := map[string]any{}
	p := a.profileOf(ctx, user)
	if p.DisplayName != "" {
		content["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		content["avatar_url"] = p.AvatarURL
	}
	if reason != "" {
		content["reason"] = reason
	}
	_, err := k.Knock(ctx, roomID, user, a.joinServers(ctx, r, roomID, user, aliasServers), content)
	return err
}
