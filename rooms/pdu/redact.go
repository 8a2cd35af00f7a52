package pdu

import (
	"encoding/json"
)

// keptTopLevel reports whether the redaction algorithm of roomVersion keeps
// the top-level key. Room version 11 stopped protecting origin, membership
// and prev_state.
func keptTopLevel(key, roomVersion string) bool {
	switch key {
	case "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
		"signatures", "depth", "prev_events", "auth_events", "origin_server_ts":
		return true
	case "origin", "membership", "prev_state":
		return !updatedRedactionRules(roomVersion)
	}
	return false
}

// keptContent reports whether the redaction algorithm of roomVersion keeps
// the content key of an event of eventType. m.room.create in v11 (keeps
// everything) and m.room.member's third_party_invite in v11 (keeps only
// "signed") are handled by redactContent itself.
func keptContent(eventType, key, roomVersion string) bool {
	v11 := updatedRedactionRules(roomVersion)
	switch eventType {
	case "m.room.member":
		return key == "membership" || key == "join_authorised_via_users_server"
	case "m.room.create":
		return key == "creator"
	case "m.room.join_rules":
		return key == "join_rule" || key == "allow"
	case "m.room.power_levels":
		switch key {
		case "ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default":
			return true
		case "invite":
			return v11
		}
	case "m.room.history_visibility":
		return key == "history_visibility"
	case "m.room.redaction":
		return v11 && key == "redacts"
	}
	return false
}

// RedactContent applies roomVersion's redaction algorithm to the content of
// an event of eventType and returns canonical JSON. roomVersion must be
// Supported; anything but "11" gets the room version 10 rules. Content that
// is not a valid canonical-JSON object redacts to {}.
func RedactContent(eventType string, content json.RawMessage, roomVersion string) json.RawMessage {
	canon, err := canonicalize(content)
	if err != nil {
		return json.RawMessage("{}")
	}
	return redactContent(eventType, canon, roomVersion)
}

// redactContent is RedactContent for content that is already canonical.
func redactContent(eventType string, content []byte, roomVersion string) []byte {
	v11 := updatedRedactionRules(roomVersion)
	if eventType == "m.room.create" && v11 && len(content) > 0 && content[0] == '{' {
		return content
	}
	members, ok := objectMembers(content)
	if !ok {
		return []byte("{}")
	}
	kept := members[:0:0]
	for _, m := range members {
		switch {
		case keptContent(eventType, m.key, roomVersion):
			kept = append(kept, m)
		case v11 && eventType == "m.room.member" && m.key == "third_party_invite":
			// Keep an object with only "signed", like Synapse: an object
			// without "signed" still leaves {} behind. Non-objects go.
			inner, isObject := objectMembers(m.raw)
			if !isObject {
				continue
			}
			var signed []member
			if raw := findMember(inner, "signed"); raw != nil {
				signed = []member{{"signed", raw}}
			}
			kept = append(kept, member{m.key, encodeObject(signed)})
		}
	}
	return encodeObject(kept)
}

// redactMembers returns the members roomVersion's redaction algorithm
// keeps, with content redacted. withSignatures controls whether the
// "signatures" key survives (it must not for hashing and signing).
func redactMembers(members []member, roomVersion string, withSignatures bool) []member {
	eventType, _ := jsonString(findMember(members, "type"))
	out := make([]member, 0, len(members))
	for _, m := range members {
		if !keptTopLevel(m.key, roomVersion) || (m.key == "signatures" && !withSignatures) {
			continue
		}
		if m.key == "content" {
			m.raw = redactContent(eventType, m.raw, roomVersion)
		}
		out = append(out, m)
	}
	return out
}

// signingBytes is the canonical JSON that is both signed and hashed into
// the reference hash: the redacted event without signatures and unsigned.
func signingBytes(members []member, roomVersion string) []byte {
	return encodeObject(redactMembers(members, roomVersion, false))
}

// Redact returns the redacted copy of e: top-level keys and content kept
// per roomVersion's algorithm, hashes and signatures intact, same ID. It is
// what Parley stores and serves once a redaction applies, and what it keeps
// of a received event whose content hash fails.
func (e *Event) Redact(roomVersion string) *Event {
	members, _ := objectMembers(e.Raw)
	red, _, err := eventFromMembers(redactMembers(members, roomVersion, true), roomVersion)
	if err != nil {
		// Redaction only drops keys that eventFromMembers does not require,
		// so a valid event always yields a valid copy; keep the contract of
		// returning an event even for a hand-built invalid one.
		red = &Event{
			RoomID: e.RoomID, Sender: e.Sender, Type: e.Type, StateKey: cloneString(e.StateKey),
			Content:    redactContent(e.Type, e.Content, roomVersion),
			PrevEvents: e.PrevEvents, AuthEvents: e.AuthEvents, Depth: e.Depth, OriginServerTS: e.OriginServerTS,
			Raw: encodeObject(redactMembers(members, roomVersion, true)),
		}
	}
	red.ID = e.ID
	red.fillCreateRoomID(roomVersion)
	return red
}
