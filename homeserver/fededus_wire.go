package homeserver

import (
	"context"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/federation/edus"
	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Presence and device lists across servers (issue 11, federation/edus):
// local changes go out to the servers that share a room with the user;
// other servers' changes come in through /send (fededus.go's sinks).

// fedEDUsOut holds the senders of local users' presence and device lists,
// and the cache of remote device lists. The fields are set by wireEDUs,
// in New, before any request; static after, and nil with federation off.
type fedEDUsOut struct {
	suffix   string // ":" + our server name
	presence *edus.PresenceOut
	devices  *edus.DeviceListOut
	remote   *edus.RemoteDevices
}

func (o *fedEDUsOut) local(user string) bool { return strings.HasSuffix(user, o.suffix) }

// presenceHook is the presence tracker's writer: the room service, and,
// once a local user's change is stored, the presence sender.
type presenceHook struct {
	w   inbox.PresenceWriter
	out *fedEDUsOut
}

func (h presenceHook) SetPresence(ctx context.Context, p storage.Presence, alsoWake []string) error {
	if err := h.w.SetPresence(ctx, p, alsoWake); err != nil {
		return err
	}
	if h.out.presence != nil && h.out.local(p.UserID) {
		h.out.presence.Changed(p)
	}
	return nil
}

// deviceListNotifier is what devices and e2ekeys tell of a device-list
// change (devices.ListNotifier, e2ekeys.ListNotifier).
type deviceListNotifier interface {
	DeviceListChanged(ctx context.Context, userID string) error
}

// deviceListHook tells local users (the room service) and, for a local
// user's change, the other servers (the device-list sender).
type deviceListHook struct {
	l   deviceListNotifier
	out *fedEDUsOut
}

func (h deviceListHook) DeviceListChanged(ctx context.Context, userID string) error {
	if err := h.l.DeviceListChanged(ctx, userID); err != nil {
		return err
	}
	if h.out.devices != nil && h.out.local(userID) {
		h.out.devices.Changed(userID)
	}
	return nil
}

// wireEDUs starts the presence and device-list senders over q and the
// remote device-list cache, which /keys/query reads. It runs in
// wireFederation, before the inbound sinks are built.
func (s *Server) wireEDUs(d fedDeps, q *outbound.Queue) {
	if d.edus == nil || d.notifier == nil || d.bg == nil {
		return
	}
	o := d.edus
	s.fedEDUs = o
	o.presence = edus.NewPresenceOut(s.cfg.ServerName, d.notifier, q, s.log)
	o.devices = edus.NewDeviceListOut(s.Store, d.notifier, q, s.log)
	tracked := func(user string) bool { return edus.SharesWithLocal(d.notifier, s.cfg.ServerName, user) }
	o.remote = edus.NewRemoteDevices(fedRemote{c: s.Fed.Client}, tracked, 0, s.log)
	s.Domain.Keys.SetRemoteCache(o.remote)
	s.goBackground(func() { o.presence.Run(d.bg) })
	s.goBackground(func() { o.devices.Run(d.bg) })
	s.goBackground(func() { <-d.bg.Done(); o.remote.Close() })
}

// RemoteDevices is the cache of other servers' device lists; nil with
// federation off. Tests read its counters.
func (s *Server) RemoteDevices() *edus.RemoteDevices {
	if s.fedEDUs == nil {
		return nil
	}
	return s.fedEDUs.remote
}

// UserDevices implements edus.Fetcher with GET user/devices/{userId}.
func (f fedRemote) UserDevices(ctx context.Context, userID string) (edus.UserDevices, error) {
	var out edus.UserDevices
	err := f.do(ctx, pdu.Domain(userID), http.MethodGet, federation.URLPath{"v1", "user", "devices", userID}, nil, nil, &out)
	return out, err
}
