// Package directory owns room aliases and the published room list: who may
// create, remove and resolve an alias, who may publish a room, and how the
// list is searched and paged. The client API and federation
// (query/directory, publicRooms) both call it. Whether a member's power
// suffices is decided by the room's power model (rooms/authrules), the
// same one the writer enforces, never by a copy of it.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// The errors the service fails with, each wrapped with %w and a reason.
var (
	// ErrNotFound: no such alias or room.
	ErrNotFound = errors.New("directory entry not found")
	// ErrForbidden: the caller may not make this change.
	ErrForbidden = errors.New("directory change forbidden")
	// ErrInvalidParam: a malformed alias or room ID, or one of another
	// server.
	ErrInvalidParam = errors.New("invalid directory parameter")
	// ErrMissingParam: a required value is empty.
	ErrMissingParam = errors.New("missing directory parameter")
	// ErrAliasExists: the alias already names a room.
	ErrAliasExists = errors.New("room alias exists")
)

func fail(sentinel error, reason string) error { return fmt.Errorf("%w: %s", sentinel, reason) }

// Store is what the service needs of the database. *storage.Store
// implements it.
type Store interface {
	GetAlias(ctx context.Context, alias string) (roomID, creator string, err error)
	PutAlias(ctx context.Context, alias, roomID, creator string) error
	DeleteAlias(ctx context.Context, alias string) error
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
	GetRoom(ctx context.Context, roomID string) (storage.Room, error)
	SetPublished(ctx context.Context, roomID string, published bool) error
	PublishedRooms(ctx context.Context, since string, limit int) ([]string, error)
	CurrentState(ctx context.Context, roomID string) ([]storage.Event, error)
	CurrentStateOf(ctx context.Context, roomIDs []string) ([]storage.Event, error)
}

// Members answers whether a user is joined to a room now.
// *rooms.Service implements it.
type Members interface {
	Joined(ctx context.Context, roomID, userID string) (bool, error)
}

// Service keeps this server's aliases and published rooms.
type Service struct {
	// Static after New.
	serverName string
	store      Store
	members    Members
}

// New builds a service for the aliases and rooms of serverName.
func New(serverName string, store Store, members Members) *Service {
	return &Service{serverName: serverName, store: store, members: members}
}

// Caller is who asks for a change: a user, and whether they are a server
// admin (who may change any room's directory entries).
type Caller struct {
	UserID string
	Admin  bool
}

// CheckAlias checks that alias is well-formed; with own, also that it is
// one of this server's, as creating one requires.
func (s *Service) CheckAlias(alias string, own bool) error {
	if !pdu.ValidRoomAlias(alias) {
		return fail(ErrInvalidParam, "Room alias invalid")
	}
	if own && pdu.Domain(alias) != s.serverName {
		return fail(ErrInvalidParam, "Room alias must be on "+s.serverName)
	}
	return nil
}

// CheckRoomID checks that roomID is well-formed.
func CheckRoomID(roomID string) error {
	if !pdu.ValidRoomID(roomID) {
		return fail(ErrInvalidParam, "Invalid room ID")
	}
	return nil
}

func aliasNotFound(alias string) error { return fail(ErrNotFound, "Room alias "+alias+" not found") }

// Resolve returns the room an alias names and the servers that know it.
// Another server's alias is not found: there is no federation to ask.
func (s *Service) Resolve(ctx context.Context, alias string) (roomID string, servers []string, err error) {
	if err := s.CheckAlias(alias, false); err != nil {
		return "", nil, err
	}
	if pdu.Domain(alias) != s.serverName {
		return "", nil, aliasNotFound(alias)
	}
	roomID, _, err = s.store.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil, aliasNotFound(alias)
	}
	if err != nil {
		return "", nil, fmt.Errorf("resolve %s: %w", alias, err)
	}
	return roomID, []string{s.serverName}, nil
}

// PutAlias maps a new alias of this server to a room the caller is joined
// to.
func (s *Service) PutAlias(ctx context.Context, caller Caller, alias, roomID string) error {
	if err := s.CheckAlias(alias, true); err != nil {
		return err
	}
	if roomID == "" {
		return fail(ErrMissingParam, "room_id is required")
	}
	if err := CheckRoomID(roomID); err != nil {
		return err
	}
	if joined, err := s.members.Joined(ctx, roomID, caller.UserID); err != nil {
		return err
	} else if !joined {
		return fail(ErrForbidden, "You are not in this room, or it does not exist")
	}
	err := s.store.PutAlias(ctx, alias, roomID, caller.UserID)
	if errors.Is(err, storage.ErrConflict) {
		return fail(ErrAliasExists, "Room alias "+alias+" already exists")
	}
	if err != nil {
		return fmt.Errorf("put alias %s: %w", alias, err)
	}
	return nil
}

// DeleteAlias lets the alias's creator, a server admin, or a member who
// may change the room's canonical alias remove it.
func (s *Service) DeleteAlias(ctx context.Context, caller Caller, alias string) error {
	if err := s.CheckAlias(alias, false); err != nil {
		return err
	}
	roomID, creator, err := s.store.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return aliasNotFound(alias)
	}
	if err != nil {
		return fmt.Errorf("load alias %s: %w", alias, err)
	}
	if creator != caller.UserID && !caller.Admin {
		ok, err := s.MayEdit(ctx, roomID, caller.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return fail(ErrForbidden, "You may not remove this alias")
		}
	}
	if err := s.store.DeleteAlias(ctx, alias); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete alias %s: %w", alias, err)
	}
	return nil
}

// RoomAliases lists a room's local aliases to a member of it.
func (s *Service) RoomAliases(ctx context.Context, userID, roomID string) ([]string, error) {
	if joined, err := s.members.Joined(ctx, roomID, userID); err != nil {
		return nil, err
	} else if !joined {
		return nil, fail(ErrForbidden, "You are not in this room")
	}
	aliases, err := s.store.RoomAliases(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("aliases of %s: %w", roomID, err)
	}
	if aliases == nil {
		aliases = []string{}
	}
	return aliases, nil
}

// MayEdit applies Synapse's rule for changing how a room is found: a
// joined member whose power suffices to send m.room.canonical_alias, under
// the room's power model (a version 12 creator always may).
func (s *Service) MayEdit(ctx context.Context, roomID, userID string) (bool, error) {
	if joined, err := s.members.Joined(ctx, roomID, userID); err != nil || !joined {
		return false, err
	}
	state, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return false, fmt.Errorf("state of %s: %w", roomID, err)
	}
	var create, powerLevels *pdu.Event
	for i := range state {
		e := &state[i]
		if e.StateKeyOr() != "" {
			continue
		}
		switch e.Type {
		case "m.room.create":
			create = clientPDU(e)
		case "m.room.power_levels":
			powerLevels = clientPDU(e)
		}
	}
	return mayEdit(create, powerLevels, userID), nil
}

// mayEdit is MayEdit's power check. A room without a create event (none
// exists) or with power levels the auth rules refuse denies.
func mayEdit(create, powerLevels *pdu.Event, userID string) bool {
	if create == nil {
		return false
	}
	version := gjson.GetBytes(create.Content, "room_version").Str
	pl, err := authrules.RoomPowerLevels(version, create, powerLevels)
	if err != nil {
		return false
	}
	return pl.UserLevel(userID) >= pl.EventLevel("m.room.canonical_alias", true)
}

// clientPDU takes from a stored event what the power model reads: sender
// and content.
func clientPDU(e *storage.Event) *pdu.Event {
	c := gjson.ParseBytes(e.Client)
	return &pdu.Event{Type: e.Type, Sender: e.Sender, Content: json.RawMessage(c.Get("content").Raw)}
}

// Published reports whether a room is in the published room list.
func (s *Service) Published(ctx context.Context, roomID string) (bool, error) {
	if err := CheckRoomID(roomID); err != nil {
		return false, err
	}
	room, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, fail(ErrNotFound, "Room not found")
	}
	if err != nil {
		return false, fmt.Errorf("load room %s: %w", roomID, err)
	}
	return room.Published, nil
}

// SetPublished publishes or unpublishes a room. Publishing advertises the
// room to everyone, so it takes a server admin or a member who MayEdit.
func (s *Service) SetPublished(ctx context.Context, caller Caller, roomID string, published bool) error {
	if _, err := s.Published(ctx, roomID); err != nil {
		return err
	}
	if !caller.Admin {
		ok, err := s.MayEdit(ctx, roomID, caller.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return fail(ErrForbidden, "You may not change this room's visibility in the directory")
		}
	}
	if err := s.store.SetPublished(ctx, roomID, published); err != nil {
		return fmt.Errorf("publish %s: %w", roomID, err)
	}
	return nil
}
