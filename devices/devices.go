// Package devices owns users' devices: listing, naming and removing them,
// the limits on client-chosen device IDs and names, and telling other
// users' clients that a device list changed. The client API and federation
// (user/devices) both call it. Access tokens are not its concern: the
// client API creates them with the device row and forgets them through the
// callback Delete takes.
package devices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/storage"
)

// The errors the service fails with, each wrapped with %w and a reason.
var (
	// ErrNotFound: the user has no such device.
	ErrNotFound = errors.New("device not found")
	// ErrInvalidParam: a device ID or name that breaks a limit.
	ErrInvalidParam = errors.New("invalid device parameter")
)

func fail(sentinel error, reason string) error { return fmt.Errorf("%w: %s", sentinel, reason) }

var errUnknown = fail(ErrNotFound, "Unknown device")

// Device field limits. PUT /devices has always capped display names at 256
// bytes; login and registration apply the same caps through Validate, so
// no route stores a larger device row.
const (
	// MaxIDBytes bounds a client-chosen device ID. The spec sets no limit;
	// 255 matches Parley's other client-chosen IDs (txnId, state key), and
	// device IDs are repeated in every to-device and key row.
	MaxIDBytes = 255
	// MaxNameBytes bounds a device's display name, as PUT /devices.
	MaxNameBytes = 256
)

// Store is what the service needs of the database. *storage.Store
// implements it.
type Store interface {
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
	GetDevice(ctx context.Context, userID, deviceID string) (storage.Device, error)
	RenameDevice(ctx context.Context, userID, deviceID, name string) error
	// DeleteDevices deletes the devices named, or all with nil.
	DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error
}

// ListNotifier records that a user's device list changed, so that the
// clients of everyone who shares a room with them re-query the keys.
// *rooms.Service implements it.
type ListNotifier interface {
	DeviceListChanged(ctx context.Context, userID string) error
}

// Service reads and changes users' devices.
type Service struct {
	// Static after New.
	store Store
	lists ListNotifier
}

// New builds a service.
func New(store Store, lists ListNotifier) *Service {
	return &Service{store: store, lists: lists}
}

// Validate checks a client-chosen device ID and display name before
// anything is written. An empty device ID means "make one up" and is fine.
// Every route that names or renames a device (login, registration, PUT
// /devices) calls it, so the limits live in one place.
func Validate(deviceID, displayName string) error {
	if len(deviceID) > MaxIDBytes {
		return fail(ErrInvalidParam, "device_id is too long")
	}
	if !utf8.ValidString(deviceID) || strings.ContainsFunc(deviceID, isControl) {
		return fail(ErrInvalidParam, "device_id must be valid UTF-8 without control characters")
	}
	if len(displayName) > MaxNameBytes {
		return fail(ErrInvalidParam, "display_name is too long")
	}
	if !utf8.ValidString(displayName) || strings.ContainsRune(displayName, 0) {
		return fail(ErrInvalidParam, "display_name must be valid UTF-8 without NUL")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// List returns the user's devices.
func (s *Service) List(ctx context.Context, userID string) ([]storage.Device, error) {
	devs, err := s.store.Devices(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	return devs, nil
}

// Get returns one of the user's devices, or ErrNotFound.
func (s *Service) Get(ctx context.Context, userID, deviceID string) (storage.Device, error) {
	d, err := s.store.GetDevice(ctx, userID, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, errUnknown
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("load device %s of %s: %w", deviceID, userID, err)
	}
	return d, nil
}

// Rename sets a device's display name, within Validate's limits.
func (s *Service) Rename(ctx context.Context, userID, deviceID, name string) error {
	if err := Validate("", name); err != nil {
		return err
	}
	err := s.store.RenameDevice(ctx, userID, deviceID, name)
	if errors.Is(err, storage.ErrNotFound) {
		return errUnknown
	}
	if err != nil {
		return fmt.Errorf("rename device %s of %s: %w", deviceID, userID, err)
	}
	return nil
}

// Delete removes the devices named (none if ids is empty; unknown IDs are
// skipped) with their keys, calls forget for each ID once the rows are
// gone (the client API drops cached access tokens there), and tells other
// users' clients that the device list changed.
func (s *Service) Delete(ctx context.Context, userID string, ids []string, forget func(deviceID string)) error {
	if len(ids) > 0 {
		if err := s.store.DeleteDevices(ctx, userID, ids); err != nil {
			return fmt.Errorf("delete devices of %s: %w", userID, err)
		}
	}
	for _, id := range ids {
		forget(id)
	}
	return s.changed(ctx, userID)
}

// DeleteOthers removes every device of the user but keep, as Delete does
// (a password change logs the other devices out this way).
func (s *Service) DeleteOthers(ctx context.Context, userID, keep string, forget func(deviceID string)) error {
	devs, err := s.List(ctx, userID)
	if err != nil {
		return err
	}
	var others []string
	for _, d := range devs {
		if d.DeviceID != keep {
			others = append(others, d.DeviceID)
		}
	}
	if len(others) == 0 {
		return nil // nothing changed: no device list change to announce
	}
	return s.Delete(ctx, userID, others, forget)
}

// DeleteAll removes every device of the user, as Delete does; forget gets
// "" for all of them.
func (s *Service) DeleteAll(ctx context.Context, userID string, forget func(deviceID string)) error {
	if err := s.store.DeleteDevices(ctx, userID, nil); err != nil {
		return fmt.Errorf("delete devices of %s: %w", userID, err)
	}
	forget("")
	return s.changed(ctx, userID)
}

// changed tells other users' clients that userID's devices or keys
// changed.
func (s *Service) changed(ctx context.Context, userID string) error {
	if err := s.lists.DeviceListChanged(ctx, userID); err != nil {
		return fmt.Errorf("device list change of %s: %w", userID, err)
	}
	return nil
}
