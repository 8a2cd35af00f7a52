package pdu

import (
	"strings"
	"unicode/utf8"
)

// maxIDBytes is the spec's limit on user IDs, room IDs, room aliases, event
// IDs, event types and state keys.
const maxIDBytes = 255

// ValidServerName reports whether s matches the spec's server name grammar:
// a DNS name, dotted IPv4 literal or bracketed IPv6 literal, with an
// optional numeric port.
func ValidServerName(s string) bool {
	if s == "" || len(s) > maxIDBytes {
		return false
	}
	host, port, hasPort := s, "", false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host = s[:end+1]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
		inner := host[1 : len(host)-1]
		if len(inner) < 2 || len(inner) > 45 {
			return false
		}
		for i := 0; i < len(inner); i++ {
			if !isIPv6Char(inner[i]) {
				return false
			}
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if host == "" {
			return false
		}
		for i := 0; i < len(host); i++ {
			if !isDNSChar(host[i]) {
				return false
			}
		}
	}
	if hasPort {
		if port == "" || len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isDNSChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

func isIPv6Char(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.'
}

// splitID splits "&localpart:server" at the first colon. ok is false when
// the sigil does not match or there is no colon.
func splitID(s string, sigil byte) (localpart, server string, ok bool) {
	if len(s) < 2 || s[0] != sigil {
		return "", "", false
	}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return "", "", false
	}
	return s[1:i], s[i+1:], true
}

// historicalLocalpart reports whether lp is acceptable as a user ID
// localpart from a remote server or old history: the spec requires servers
// to accept any non-surrogate code points except ':' and NUL, even empty.
func historicalLocalpart(lp string) bool {
	return utf8.ValidString(lp) && !strings.ContainsRune(lp, 0) && !strings.ContainsRune(lp, ':')
}

// ValidUserID reports whether s is a user ID Parley accepts in events:
// "@localpart:server", at most 255 bytes, with the historical (tolerant)
// localpart rules, because rooms contain senders registered under them.
// Use ValidLocalpart to decide what Parley itself lets people register.
func ValidUserID(s string) bool {
	if len(s) > maxIDBytes {
		return false
	}
	lp, server, ok := splitID(s, '@')
	return ok && historicalLocalpart(lp) && ValidServerName(server)
}

// ValidLocalpart reports whether lp is a user ID localpart under the
// current grammar (non-empty; a-z, 0-9 and . _ = - / +), which is what new
// accounts must use.
func ValidLocalpart(lp string) bool {
	if lp == "" {
		return false
	}
	for i := 0; i < len(lp); i++ {
		c := lp[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._=-/+", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidRoomID reports whether s is a room ID of any supported room
// version: "!opaque:server" (room versions 1 to 11; at most 255 bytes, the
// opaque part non-empty and free of ':' and NUL) or "!" followed by the
// 43-character URL-safe unpadded base64 of a create event's reference hash
// (room version 12, MSC4291). Client routes use it before they know the
// room's version; ValidRoomIDFor is the strict per-version check.
func ValidRoomID(s string) bool {
	return validLegacyRoomID(s) || validHashRoomID(s)
}

// ValidRoomIDFor reports whether s is a room ID of roomVersion: the hashed
// form in version 12, the "!opaque:server" form before.
func ValidRoomIDFor(roomVersion, s string) bool {
	if RoomIDFromCreate(roomVersion) {
		return validHashRoomID(s)
	}
	return validLegacyRoomID(s)
}

func validLegacyRoomID(s string) bool {
	if len(s) > maxIDBytes {
		return false
	}
	lp, server, ok := splitID(s, '!')
	return ok && lp != "" && historicalLocalpart(lp) && ValidServerName(server)
}

// validHashRoomID reports whether s is "!" and a reference hash, the room
// ID form of room version 12.
func validHashRoomID(s string) bool {
	return len(s) == 44 && s[0] == '!' && refHashChars(s[1:])
}

// RoomIDOfCreate returns the room ID that a version 12 create event with
// ID createEventID names: the event ID with "!" for "$".
func RoomIDOfCreate(createEventID string) string {
	if createEventID == "" {
		return ""
	}
	return "!" + createEventID[1:]
}

// CreateEventIDOf returns the ID of the create event a version 12 room ID
// is derived from, or "" when roomID is not of that form.
func CreateEventIDOf(roomID string) string {
	if !validHashRoomID(roomID) {
		return ""
	}
	return "$" + roomID[1:]
}

// ValidRoomAlias reports whether s is "#alias:server", at most 255 bytes,
// the alias part non-empty and free of ':' and NUL.
func ValidRoomAlias(s string) bool {
	if len(s) > maxIDBytes {
		return false
	}
	lp, server, ok := splitID(s, '#')
	return ok && lp != "" && historicalLocalpart(lp) && ValidServerName(server)
}

// ValidEventID reports whether s is an event ID of room versions 4 and
// later: "$" followed by the 43-character URL-safe unpadded base64 of a
// SHA-256 reference hash. Older formats cannot occur in v10/v11 rooms.
func ValidEventID(s string) bool {
	return len(s) == 44 && s[0] == '$' && refHashChars(s[1:])
}

// refHashChars reports whether s is all URL-safe base64 characters.
func refHashChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidEventType reports whether s can be an event type: non-empty, valid
// UTF-8 and at most 255 bytes.
func ValidEventType(s string) bool {
	return s != "" && len(s) <= maxIDBytes && utf8.ValidString(s)
}

// Domain returns the server name of a user ID, room ID or room alias (the
// part after the first ':'), or "" when there is none.
func Domain(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return id[i+1:]
	}
	return ""
}
