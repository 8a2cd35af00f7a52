package authrules

import (
	"slices"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// IsCreator reports whether user created the room whose create event is
// create, as roomVersion counts creators: content.creator in version 10,
// the sender in version 11, and from version 12 (MSC4289) the sender and
// every user in content.additional_creators. Version 12 creators have
// unlimited power; the rules of versions 10 and 11 give the creator 100
// only while the room has no power levels event. State resolution ranks
// power events by it, so it lives here, beside the rules that use it.
func IsCreator(roomVersion string, create *pdu.Event, user string) bool {
	if create == nil {
		return false
	}
	switch roomVersion {
	case "10":
		return gjson.GetBytes(create.Content, "creator").Str == user
	case "11":
		return create.Sender == user
	}
	if create.Sender == user {
		return true
	}
	extra := gjson.GetBytes(create.Content, "additional_creators")
	if !extra.IsArray() {
		return false
	}
	found := false
	extra.ForEach(func(_, v gjson.Result) bool {
		found = v.Type == gjson.String && v.Str == user
		return !found
	})
	return found
}

// creatorsPrivileged reports whether roomVersion gives its creators
// unlimited power and lets the create event name additional_creators
// (MSC4289, room version 12).
func creatorsPrivileged(roomVersion string) bool { return roomVersion == "12" }

// Creators lists the creators of a room whose create event is create, for
// the room versions where creators have unlimited power (version 12): the
// sender, then content.additional_creators in order, without repeats. It
// is nil for earlier versions, where the creator is an ordinary user once
// power levels exist.
func Creators(roomVersion string, create *pdu.Event) []string {
	if create == nil || !creatorsPrivileged(roomVersion) {
		return nil
	}
	out := []string{create.Sender}
	gjson.GetBytes(create.Content, "additional_creators").ForEach(func(_, v gjson.Result) bool {
		if v.Type == gjson.String && !slices.Contains(out, v.Str) {
			out = append(out, v.Str)
		}
		return true
	})
	return out
}

// checkAdditionalCreators is auth rule 1.4 of room version 12: when
// present, content.additional_creators must be an array of strings that
// each pass the user ID check applied to an event's sender.
func checkAdditionalCreators(content []byte) error {
	extra := gjson.GetBytes(content, "additional_creators")
	if !extra.Exists() {
		return nil
	}
	if !extra.IsArray() {
		return deny("additional_creators must be an array of user IDs, got %s", extra.Raw)
	}
	var err error
	extra.ForEach(func(_, v gjson.Result) bool {
		if v.Type != gjson.String || !pdu.ValidUserID(v.Str) {
			err = deny("additional_creators entry %s is not a valid user ID", v.Raw)
		}
		return err == nil
	})
	return err
}

// RoomPowerLevels is the power model of a room: the content of its power
// levels event plEvent (nil when it has none, and the creator then has
// 100), and from room version 12 its creators with unlimited power. The
// writer and the auth rules both use it, so the two cannot disagree.
func RoomPowerLevels(roomVersion string, create, plEvent *pdu.Event) (PowerLevels, error) {
	var pl PowerLevels
	if plEvent == nil {
		creator := create.Sender
		if roomVersion == "10" {
			creator = gjson.GetBytes(create.Content, "creator").Str
		}
		pl = DefaultPowerLevels(creator)
	} else {
		var err error
		if pl, err = ParsePowerLevels(plEvent.Content); err != nil {
			return pl, err
		}
	}
	pl.Creators = Creators(roomVersion, create)
	return pl, nil
}
