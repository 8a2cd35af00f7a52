package authrules

import (
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
