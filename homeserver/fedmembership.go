package homeserver

import (
	"context"
	"errors"

	"github.com/parley-im/parley/clientapi"
	"github.com/parley-im/parley/federation/membership"
	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

// Joins, leaves and invites across servers (issue 11): the resident
// server's routes on the federation listener, and the joining side the
// client API calls. See docs/federation.md, "Joins and leaves".

// fedMembership is the client API's RemoteMembership. j is set by
// wireMembership, in New, before any request can arrive; static after.
type fedMembership struct{ j *membership.Joiner }

var (
	_ clientapi.RemoteMembership = (*fedMembership)(nil)
	_ rooms.RemoteInviter        = (*fedMembership)(nil)
)

var errFedNotStarted = errors.New("federation: membership not wired")

func (f *fedMembership) Join(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	if f.j == nil {
		return "", errFedNotStarted
	}
	return f.j.Join(ctx, roomID, user, servers, content)
}

func (f *fedMembership) Leave(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	if f.j == nil {
		return "", errFedNotStarted
	}
	return f.j.Leave(ctx, roomID, user, servers, content)
}

func (f *fedMembership) ResolveAlias(ctx context.Context, alias string) (string, []string, error) {
	if f.j == nil {
		return "", nil, errFedNotStarted
	}
	return f.j.ResolveAlias(ctx, alias)
}

// wireMembership mounts make_join, send_join, make_leave and send_leave
// and gives the client API its joiner.
func (s *Server) wireMembership(remote *fedMembership, q *outbound.Queue) {
	fed := s.Fed
	membership.NewResident(membership.Config{ServerName: s.cfg.ServerName, Key: s.Key, Origin: requestOrigin,
		Rooms: s.Rooms, Keys: fed.Keys, Log: s.log}).Mount(fed.Router.Authed)
	if remote != nil {
		remote.j = membership.NewJoiner(membership.JoinerConfig{ServerName: s.cfg.ServerName, Key: s.Key,
			Client: fed.Client.Client, Keys: fed.Keys, Rooms: s.Rooms, Spans: q, Log: s.log})
	}
}

func (f *fedMembership) SendInvite(ctx context.Context, version string, ev *pdu.Event, inviteState [][]byte) (*pdu.Event, error) {
	if f.j == nil {
		return nil, errFedNotStarted
	}
	return f.j.SendInvite(ctx, version, ev, inviteState)
}
