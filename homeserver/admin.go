package homeserver

import (
	"github.com/parley-im/parley/accounts"
	"github.com/parley-im/parley/admin"
)

// CLIActor is the audit log's actor for actions taken with the parley
// command on the box, which has no access token and so no user.
const CLIActor = "cli"

// Admin returns an admin service over this server's store, for the parley
// command. It has no access-token cache to clear: a running server keeps
// serving tokens it has cached until it restarts (see docs/operators.md),
// so logging devices out at once is the admin API's job.
func (s *Server) Admin() *admin.Service {
	return admin.New(admin.Config{
		ServerName: s.cfg.ServerName, Store: s.Store, Devices: s.Domain.Devices, Hasher: s.Hasher, Rooms: s.Rooms,
		Accounts: s.Store, Deactivator: accounts.NewDeactivator(s.Store, s.Domain.Devices, s.Rooms), RoomOps: s.Rooms, Purger: s.Rooms, Media: s.Media, Notices: s.Store, NoticeRooms: s.Rooms,
	})
}
