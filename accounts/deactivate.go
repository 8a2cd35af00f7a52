package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// AccountStore is what deactivation changes; *storage.Store implements it.
type AccountStore interface {
	SetDeactivated(ctx context.Context, userID string) error
	SetProfile(ctx context.Context, userID, displayName, avatarURL string) error
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)
	DeleteExpiredOpenIDTokens(ctx context.Context, nowMs int64, userID string) (int64, error)
}

// Devices logs devices out; *devices.Service implements it.
type Devices interface {
	DeleteAll(ctx context.Context, userID string, forget func(deviceID string)) error
}

// Rooms changes memberships; *rooms.Service implements it, so every
// membership rule runs for the leaves deactivation makes.
type Rooms interface {
	ChangeMembership(ctx context.Context, req rooms.MembershipRequest) (string, error)
}

// Deactivator deactivates accounts. Static after NewDeactivator.
type Deactivator struct {
	store   AccountStore
	devices Devices
	rooms   Rooms
}

// NewDeactivator builds a Deactivator.
func NewDeactivator(store AccountStore, devices Devices, rooms Rooms) *Deactivator {
	return &Deactivator{store: store, devices: devices, rooms: rooms}
}

// Deactivate deactivates userID for good: the account is marked first, so
// login, token use and registration of the name are refused from then on;
// then every device is logged out (forget drops cached tokens), while the
// user still shares rooms with those who must see the device list change;
// then the user leaves every room they are joined to, invited to or
// knocking on (through rooms.Service, so every rule and every other
// member's view runs as for a normal leave), and OpenID tokens are deleted. With
// erase, the profile (display name, avatar) is erased too, after the
// leaves so no member event carries the change.
//
// It is idempotent: if a step fails, the error is returned and running it
// again (the operator API, issue 16) finishes the job; rooms already left
// are not left twice.
func (d *Deactivator) Deactivate(ctx context.Context, userID string, erase bool, forget func(deviceID string)) error {
	if err := d.store.SetDeactivated(ctx, userID); err != nil {
		return fmt.Errorf("deactivate %s: %w", userID, err)
	}
	var errs []error
	// Devices go before the rooms: the device list change reaches the
	// users who share a room with userID, so it must be made while they
	// still do, or their clients keep the devices (sync has no
	// device_lists.left).
	if err := d.devices.DeleteAll(ctx, userID, forget); err != nil {
		errs = append(errs, fmt.Errorf("log out devices: %w", err))
	}
	for _, m := range []string{"join", "invite", "knock"} {
		ms, err := d.store.UserMemberships(ctx, userID, m)
		if err != nil {
			return fmt.Errorf("deactivate %s: rooms: %w", userID, err)
		}
		for _, mb := range ms {
			_, err := d.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: mb.RoomID, Sender: userID, Target: userID,
				Membership: "leave", Reason: "Account deactivated", ByService: true}) // ByService: out of the server notices room too
			if err != nil {
				errs = append(errs, fmt.Errorf("leave %s: %w", mb.RoomID, err))
			}
		}
	}
	if _, err := d.store.DeleteExpiredOpenIDTokens(ctx, 0, userID); err != nil {
		errs = append(errs, err)
	}
	if erase {
		if err := d.store.SetProfile(ctx, userID, "", ""); err != nil {
			errs = append(errs, fmt.Errorf("erase profile: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deactivate %s: %w", userID, err)
	}
	return nil
}
