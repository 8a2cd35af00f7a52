package clientapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

// RemoteMembership joins and leaves rooms through other servers
// (federation/membership.Joiner). The room service decides when that is
// needed: it answers rooms.ErrNotResident (or ErrUnknownRoom for a room it
// does not hold) to a join or leave this server cannot place by itself.
type RemoteMembership interface {
	// Join joins user through the first of servers that lets it and
	// returns the join's event ID.
	Join(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error)
	// Leave leaves (or rejects an invite to) a room through servers.
	Leave(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error)
	// ResolveAlias asks the alias's server for its room and servers.
	ResolveAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
}

// joinServers are the servers to try for a remote join or leave, in
// order: the client's server_name and via, the alias's servers, the
// server that invited the user, the room ID's server (rooms before
// version 12), and the servers of the members this server last saw joined.
func (a *API) joinServers(ctx context.Context, r *http.Request, roomID, user string, aliasServers []string) []string {
	q := r.URL.Query()
	out := append(append(append([]string{}, q["server_name"]...), q["via"]...), aliasServers...)
	if m, err := a.store.GetMembership(ctx, roomID, user); err == nil && m.Sender != "" {
		out = append(out, pdu.Domain(m.Sender))
	}
	if d := pdu.Domain(roomID); d != "" {
		out = append(out, d)
	}
	if ms, err := a.store.RoomMemberships(ctx, roomID); err == nil {
		for _, m := range ms {
			if m.Membership == "join" {
				out = append(out, pdu.Domain(m.UserID))
			}
		}
	}
	return out
}

// remoteJoin joins through another server after the room service said it
// cannot place the join itself.
func (a *API) remoteJoin(ctx context.Context, r *http.Request, roomID, user string, aliasServers []string, reason string) error {
	if a.remote == nil {
		return apierr.NotFound("No known room " + roomID)
	}
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
	_, err := a.remote.Join(ctx, roomID, user, a.joinServers(ctx, r, roomID, user, aliasServers), content)
	return err
}

// remoteLeave leaves, or rejects an invite, through another server.
func (a *API) remoteLeave(ctx context.Context, r *http.Request, roomID, user, reason string) error {
	if a.remote == nil {
		return errors.Join(rooms.ErrNotResident)
	}
	content := map[string]any{}
	if reason != "" {
		content["reason"] = reason
	}
	_, err := a.remote.Leave(ctx, roomID, user, a.joinServers(ctx, r, roomID, user, nil), content)
	return err
}
