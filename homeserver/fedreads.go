package homeserver

import (
	"github.com/parley-im/parley/federation/query"
	"github.com/parley-im/parley/federation/roomread"
)

// mountFedReads serves other servers' reads on the federation router,
// behind the X-Matrix check (issue 11): room data (federation/roomread,
// with the access rule in the room service) and questions about users and
// rooms (federation/query, answered by the domain services).
func (s *Server) mountFedReads(fed *Federation) {
	roomread.New(roomread.Config{ServerName: s.cfg.ServerName, Rooms: s.Rooms, Origin: requestOrigin, Log: s.log}).Mount(fed.Router.Authed)
	d := s.Domain
	query.New(query.Config{ServerName: s.cfg.ServerName, Profiles: d.Profiles, Devices: d.Devices, Keys: d.Keys,
		Directory: d.Directory, Origin: requestOrigin, Log: s.log}).Mount(fed.Router.Authed)
}
