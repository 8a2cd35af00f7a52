package clientapi

import (
	"encoding/json"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// roomCreator reports whether userID is a creator with unlimited power
// (room version 12, MSC4289) of the room whose create event, in client
// form, is create. Such creators are never listed in the power levels, so
// mayEditDirectory's level check alone would refuse them.
func roomCreator(create []byte, userID string) bool {
	if create == nil {
		return false
	}
	c := gjson.ParseBytes(create)
	ev := &pdu.Event{Sender: c.Get("sender").Str, Content: json.RawMessage(c.Get("content").Raw)}
	return authrules.PowerLevels{Creators: authrules.Creators(c.Get("content.room_version").Str, ev)}.IsCreator(userID)
}
