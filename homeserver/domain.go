package homeserver

import (
	"log/slog"

	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Domain holds the domain services that the client API and federation
// both call, so that both apply the same rules. Static after New.
type Domain struct {
	Profiles  *profiles.Service
	Devices   *devices.Service
	Keys      *e2ekeys.Service
	Directory *directory.Service
}

// newDomain builds the services; lists hears every device-list change of
// a local user (the room service, wrapped to tell other servers too:
// fededus_wire.go).
func newDomain(serverName string, store *storage.Store, rs *rooms.Service, lists deviceListNotifier, log *slog.Logger) *Domain {
	return &Domain{
		Profiles:  profiles.New(serverName, store, rs, log),
		Devices:   devices.New(store, lists),
		Keys:      e2ekeys.New(serverName, store, lists),
		Directory: directory.New(serverName, store, rs),
	}
}
