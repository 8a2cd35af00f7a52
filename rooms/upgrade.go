package rooms

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// upgradeCopiedState are the state events an upgrade carries into the new
// room as they are, after the spec's list (client-server "Room Upgrades")
// and Synapse's. Power levels are carried separately, fitted to the new
// version's creator rules; members are not: they follow the tombstone.
var upgradeCopiedState = []string{
	"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.guest_access", "m.room.history_visibility", "m.room.join_rules",
}

// UpgradeRoom replaces oldRoomID by a new room of newVersion, as POST
// /rooms/{roomId}/upgrade asks: the caller must be joined and able to
// send m.room.tombstone in the old room (checked first, so a refused
// upgrade creates nothing). The new room's create event names the old one
// as predecessor; its state is copied; its power levels are the old
// ones, fitted to the new version (a version 12 room gives its creator
// unlimited power instead of a level). Then the old room gets the
// tombstone and its power levels are raised so only moderators may send
// or invite (when the caller may change them). It returns the new room ID.
//
// Everything goes through CreateRoom and Send, so every rule (auth rules,
// the creation and message limits) runs as for a client.
func (s *Service) UpgradeRoom(ctx context.Context, userID, oldRoomID, newVersion string) (string, error) {
	if !pdu.Supported(newVersion) {
		return "", fmt.Errorf("%w: %s", ErrBadRoomVersion, newVersion)
	}
	joined, err := s.Joined(ctx, oldRoomID, userID)
	if err != nil {
		return "", err
	}
	if !joined {
		return "", errNotInRoom(oldRoomID)
	}
	state, err := s.store.CurrentState(ctx, oldRoomID)
	if err != nil {
		return "", err
	}
	byType := map[string]*storage.Event{}
	for i := range state {
		if state[i].StateKeyOr() == "" {
			byType[state[i].Type] = &state[i]
		}
	}
	create := byType["m.room.create"]
	if create == nil {
		return "", fmt.Errorf("%w: room %s has no create event", ErrUnknownRoom, oldRoomID)
	}
	createContent := gjson.GetBytes(create.Client, "content")
	oldVersion := createContent.Get("room_version").String()
	if oldVersion == "" {
		oldVersion = "1"
	}
	pl, err := powerLevelsOf(oldVersion, create, byType["m.room.power_levels"])
	if err != nil {
		return "", err
	}
	if pl.UserLevel(userID) < pl.EventLevel("m.room.tombstone", true) {
		return "", fmt.Errorf("%w: upgrading the room needs power level %d", ErrForbidden, pl.EventLevel("m.room.tombstone", true))
	}

	newCreate := map[string]any{"predecessor": map[string]any{"room_id": oldRoomID}}
	if t := createContent.Get("type"); t.Type == gjson.String {
		newCreate["type"] = t.Str
	}
	if f := createContent.Get("m\\.federate"); f.Exists() {
		newCreate["m.federate"] = f.Value()
	}
	var initial []StateEvent
	for _, typ := range upgradeCopiedState {
		if e := byType[typ]; e != nil {
			initial = append(initial, StateEvent{Type: typ, Content: json.RawMessage(gjson.GetBytes(e.Client, "content").Raw)})
		}
	}
	var plOverride json.RawMessage
	if e := byType["m.room.power_levels"]; e != nil {
		if plOverride, err = upgradePowerLevels(gjson.GetBytes(e.Client, "content").Raw, userID, newVersion); err != nil {
			return "", err
		}
	}
	preset := "private_chat"
	if jr := byType["m.room.join_rules"]; jr != nil && gjson.GetBytes(jr.Client, "content.join_rule").String() == "public" {
		preset = "public_chat"
	}
	profile := Profile{}
	if me, err := s.store.MemberEvents(ctx, []storage.RoomUser{{RoomID: oldRoomID, UserID: userID}}); err == nil && len(me) == 1 {
		profile.DisplayName = gjson.GetBytes(me[0].Client, "content.displayname").String()
		profile.AvatarURL = gjson.GetBytes(me[0].Client, "content.avatar_url").String()
	}
	newRoomID, err := s.CreateRoom(ctx, CreateRequest{
		Creator: userID, CreatorProfile: profile, RoomVersion: newVersion, Preset: preset,
		CreationContent: mustJSON(newCreate), PowerLevelOverride: plOverride, InitialState: initial,
	})
	if err != nil {
		return "", err
	}
	_, err = s.Send(ctx, SendRequest{RoomID: oldRoomID, Sender: userID, Type: "m.room.tombstone", StateKey: strPtr(""),
		Content: mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": newRoomID})})
	if err != nil {
		return "", fmt.Errorf("tombstone %s: %w", oldRoomID, err)
	}
	// Restrict the old room: a best effort, as the spec says "should";
	// the caller may be allowed the tombstone and not the power levels.
	if e := byType["m.room.power_levels"]; e != nil && pl.UserLevel(userID) >= pl.EventLevel("m.room.power_levels", true) {
		if restricted, ok := restrictOldRoom(gjson.GetBytes(e.Client, "content").Raw); ok {
			_, _ = s.Send(ctx, SendRequest{RoomID: oldRoomID, Sender: userID, Type: "m.room.power_levels", StateKey: strPtr(""), Content: restricted})
		}
	}
	return newRoomID, nil
}

// powerLevelsOf reads a room's power model from stored events.
func powerLevelsOf(version string, create, plEvent *storage.Event) (authrules.PowerLevels, error) {
	toPDU := func(e *storage.Event) *pdu.Event {
		if e == nil {
			return nil
		}
		return &pdu.Event{Sender: e.Sender, Type: e.Type, StateKey: e.StateKey, Content: json.RawMessage(gjson.GetBytes(e.Client, "content").Raw)}
	}
	pl, err := authrules.RoomPowerLevels(version, toPDU(create), toPDU(plEvent))
	if err != nil {
		return pl, fmt.Errorf("%w: power levels: %v", ErrInvalid, err)
	}
	return pl, nil
}

// upgradePowerLevels fits the old room's power levels to the new room: in
// a version 12 room the upgrader is the creator, whose power is unlimited
// and may not be listed; in earlier versions the upgrader keeps at least
// the level of the old room's top, so they can administer the new one.
func upgradePowerLevels(content, upgrader, newVersion string) (json.RawMessage, error) {
	var pl map[string]any
	if err := json.Unmarshal([]byte(content), &pl); err != nil || pl == nil {
		return nil, nil // a malformed power levels event is not carried over
	}
	users, _ := pl["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	if pdu.RoomIDFromCreate(newVersion) {
		delete(users, upgrader)
	} else {
		top := 100.0
		for _, v := range users {
			if f, ok := v.(float64); ok && f > top {
				top = f
			}
		}
		users[upgrader] = top
	}
	pl["users"] = users
	return mustJSON(pl), nil
}

// restrictOldRoom raises events_default and invite to at least 50 (or
// users_default+1), so after the upgrade only moderators speak or invite
// in the old room. ok is false when nothing would change.
func restrictOldRoom(content string) (json.RawMessage, bool) {
	var pl map[string]any
	if err := json.Unmarshal([]byte(content), &pl); err != nil || pl == nil {
		return nil, false
	}
	usersDefault, _ := pl["users_default"].(float64)
	want := max(50, usersDefault+1)
	changed := false
	for _, k := range []string{"events_default", "invite"} {
		if v, _ := pl[k].(float64); v < want {
			pl[k] = want
			changed = true
		}
	}
	return mustJSON(pl), changed
}
