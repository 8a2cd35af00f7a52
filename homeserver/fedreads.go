package homeserver

import (
	"github.com/parley-im/parley/federation/query"
	"github.com/parley-im/parley/federation/roomread"
	"github.com/parley-im/parley/media"
)

// mountFedReads serves other servers' reads on the federation router,
// behind the X-Matrix check (issue 11): room data (federation/roomread,
// with the access rule in the room service) and questions about users and
// rooms (federation/query, answered by the domain services). It also lets
// the domain services ask other servers for their users' profiles and keys
// (fedremote.go), so the client API serves remote users too.
func (s *Server) mountFedReads(fed *Federation, repo *media.Repo) {
	remote := fedRemote{c: fed.Client}
	s.Domain.Profiles.SetRemote(remote, 0)
	s.Domain.Keys.SetRemote(remote)
	if repo != nil {
		repo.SetRemote(remote)
		repo.MountFederation(fed.Router.Authed, requestOrigin, serverMediaAccess(s.Store))
	}
	roomread.New(roomread.Config{ServerName: s.cfg.ServerName, Rooms: s.Rooms, Origin: requestOrigin, Log: s.log}).Mount(fed.Router.Authed)
	d := s.Domain
	query.New(query.Config{ServerName: s.cfg.ServerName, Profiles: d.Profiles, Devices: d.Devices, Keys: d.Keys,
		Directory: d.Directory, Origin: requestOrigin, Log: s.log, DeviceStream: s.Store.DeviceListStreamID}).Mount(fed.Router.Authed)
}
