package rooms

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// This file holds what creating a room of version 12 (MSC4289, MSC4291)
// changes in CreateRoom, kept apart so create.go only calls it.

// newRoomID picks the ID of a room about to be created from protos (the
// opening events, the create event first). Before version 12 it is random
// on this server. In version 12 it is the create event's ID (MSC4291), so
// the create event is built here: its timestamp is fixed in protos[0] so
// that createRoom builds the very same event again inside the writer.
// The create event is checked here too, since createRoom writes it
// without the auth rules (it has no state to check against) and version
// 12 has a create rule a client can break: additional_creators.
func (s *Service) newRoomID(version string, protos []pdu.Proto) (string, error) {
	if !pdu.RoomIDFromCreate(version) {
		return s.NewRoomID(), nil
	}
	protos[0].OriginServerTS = s.createTimestamp()
	create, err := pdu.Build(protos[0], version, s.cfg.Key)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := authrules.Check(version, create, nil); err != nil {
		return "", fmt.Errorf("%w: creation_content: %v", ErrInvalid, err)
	}
	return create.RoomID, nil
}

// createTimestamp is the origin_server_ts of a new version 12 create
// event: now, but always above the last one this server handed out. The
// room ID is the create event's hash, so two identical createRoom calls
// by one user in the same millisecond would otherwise get the same ID and
// the second would fail on a room that exists.
func (s *Service) createTimestamp() int64 {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	ts := max(s.cfg.Now().UnixMilli(), s.lastCreateTS+1)
	s.lastCreateTS = ts
	return ts
}

// DefaultRoomVersion is the version of rooms created without one, as the
// capabilities endpoint advertises it.
func (s *Service) DefaultRoomVersion() string { return s.cfg.DefaultRoomVersion }

// creatorsCreateContent adds to the create content of a version 12 room
// the users who share the creator's unlimited power: with the
// trusted_private_chat preset, the invitees, who in earlier versions get
// the creator's level 100 (MSC4289). Before version 12 it does nothing.
func creatorsCreateContent(version, preset string, req CreateRequest, createContent map[string]any) {
	if !pdu.RoomIDFromCreate(version) || preset != "trusted_private_chat" || len(req.Invite) == 0 {
		return
	}
	var extra []any
	if list, ok := createContent["additional_creators"].([]any); ok {
		extra = list
	}
	for _, u := range req.Invite {
		if u != req.Creator && !slices.Contains(extra, any(u)) {
			extra = append(extra, u)
		}
	}
	createContent["additional_creators"] = extra
}

// creatorsPowerLevels fits the power levels of a new version 12 room,
// after power_level_content_override, to creators with unlimited power:
// the defaults do not list them, and an override that lists one is a bad
// request, since the auth rules would refuse the event. m.room.tombstone
// needs 150 by default, above what anyone else is given, so only a
// creator can upgrade the room (MSC4289). Before version 12 it does
// nothing.
func creatorsPowerLevels(version string, req CreateRequest, createContent map[string]any, pl map[string]any) error {
	if !pdu.RoomIDFromCreate(version) {
		return nil
	}
	var overridden map[string]json.RawMessage
	_ = json.Unmarshal(req.PowerLevelOverride, &overridden) // openingEvents has refused a non-object
	creators := []string{req.Creator}
	if list, ok := createContent["additional_creators"].([]any); ok {
		for _, u := range list {
			if s, ok := u.(string); ok {
				creators = append(creators, s)
			}
		}
	}
	if raw, ok := overridden["users"]; ok {
		var users map[string]json.RawMessage
		_ = json.Unmarshal(raw, &users) // a malformed override is refused by the auth rules
		for _, c := range creators {
			if _, listed := users[c]; listed {
				return fmt.Errorf("%w: power_level_content_override lists %s, a creator of this version %s room, whose power is unlimited and cannot be set", ErrInvalid, c, version)
			}
		}
	} else if users, ok := pl["users"].(map[string]any); ok {
		for _, c := range creators {
			delete(users, c)
		}
	}
	if _, ok := overridden["events"]; !ok {
		if events, ok := pl["events"].(map[string]any); ok {
			events["m.room.tombstone"] = 150
		}
	}
	return nil
}
