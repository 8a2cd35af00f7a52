package homeserver

import "github.com/parley-im/parley/federation/inbound"

// FedEDUSinks exposes the EDU sinks /send uses, for tests of what they do
// with EDUs the inbound checks would only pass from a server in the room.
func (s *Server) FedEDUSinks() inbound.EDUSinks {
	return eduSinks(s.cfg.ServerName, fedDeps{notifier: s.Notifier, rooms: s.Rooms, toDevice: s.ToDevice}, s.log)
}
