package clientapi

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// Store is what the handlers still read and write themselves: accounts and
// access tokens (auth.go, register.go), filters and account data, and the
// room reads /messages and /context page through. Everything else goes
// through a domain service. *storage.Store implements it.
type Store interface {
	CreateAccount(ctx context.Context, u storage.User, d *storage.Device) error
	CreateDevice(ctx context.Context, d storage.Device) error
	DeviceByToken(ctx context.Context, tokenHash string) (storage.Device, error)
	TouchDevice(ctx context.Context, userID, deviceID string, ts int64, ip string) error
	GetUser(ctx context.Context, userID string) (storage.User, error)
	SetPassword(ctx context.Context, userID, hash string) error
	UseRegistrationToken(ctx context.Context, token string, nowMs int64, commit bool) (bool, error)
	Profiles(ctx context.Context, userIDs []string) (map[string]storage.Profile, error)

	GetFilter(ctx context.Context, userID, filterID string) (string, error)
	PutFilter(ctx context.Context, userID, body string) (string, error)
	GetAccountData(ctx context.Context, userID, roomID, typ string) (string, error)
	MediaRefs(ctx context.Context, mediaID string) ([]storage.MediaRef, error)

	GetEvent(ctx context.Context, eventID string) (storage.Event, error)
	RoomEventsTopo(ctx context.Context, q storage.TopoQuery) ([]storage.Event, error)
	GetMembership(ctx context.Context, roomID, userID string) (storage.Membership, error)
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)
	SetForgotten(ctx context.Context, roomID, userID string) error
	SharesRoom(ctx context.Context, a, b string) (bool, error)
}
