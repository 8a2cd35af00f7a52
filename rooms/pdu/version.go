package pdu

// DefaultRoomVersion is the room version Parley uses for new rooms.
const DefaultRoomVersion = "11"

// Supported reports whether Parley creates and accepts rooms of roomVersion.
// Only "10" and "11" are implemented: both use the v4 event ID format and
// strict canonical JSON, so one code path serves both.
func Supported(roomVersion string) bool {
	return roomVersion == "10" || roomVersion == "11"
}

// updatedRedactionRules reports whether roomVersion uses the redaction
// algorithm introduced in room version 11 (MSC2176 and MSC3821).
func updatedRedactionRules(roomVersion string) bool {
	return roomVersion == "11"
}
