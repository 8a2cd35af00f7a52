package clientapi

import (
	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/profiles"
)

// withDomainServices builds the domain services Deps leaves nil, on its
// Store and Rooms, so tests and tools that build an API alone still get
// them. The homeserver builds them itself, to share them with federation.
func withDomainServices(cfg Config, d Deps) Deps {
	if d.Profiles == nil {
		d.Profiles = profiles.New(cfg.ServerName, d.Store, d.Rooms, d.Logger)
	}
	if d.Devices == nil {
		d.Devices = devices.New(d.Store, d.Rooms)
	}
	if d.Keys == nil {
		d.Keys = e2ekeys.New(cfg.ServerName, d.Store, d.Rooms)
	}
	if d.Directory == nil {
		d.Directory = directory.New(cfg.ServerName, d.Store, d.Rooms)
	}
	return d
}
