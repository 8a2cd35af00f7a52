package pdu

// DefaultRoomVersion is the room version of new rooms when the
// configuration names none (rooms.Config.DefaultRoomVersion).
const DefaultRoomVersion = "12"

// Supported reports whether Parley creates and accepts rooms of roomVersion.
// "10", "11" and "12" are implemented: all use the v4 event ID format and
// strict canonical JSON, so one code path serves them, with the few
// differences switched by the helpers below.
func Supported(roomVersion string) bool {
	return roomVersion == "10" || roomVersion == "11" || roomVersion == "12"
}

// updatedRedactionRules reports whether roomVersion uses the redaction
// algorithm introduced in room version 11 (MSC2176 and MSC3821). Version 12
// keeps it unchanged; it keeps the whole m.room.create content, so
// additional_creators survives a redaction.
func updatedRedactionRules(roomVersion string) bool {
	return roomVersion == "11" || roomVersion == "12"
}

// RoomIDFromCreate reports whether roomVersion derives the room ID from the
// create event (MSC4291, room version 12): the room ID is the create
// event's ID with "!" for "$", the create event carries no room_id, and no
// other event lists the create event in its auth_events.
func RoomIDFromCreate(roomVersion string) bool {
	return roomVersion == "12"
}
