package pdu

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Parse validates a PDU, as stored or as received, for roomVersion: JSON
// and canonical-JSON value rules, field types, identifier grammar, the size
// limits and a well-formed content hash; it computes the event ID.
// "unsigned" and any "event_id" key are dropped, since neither is covered
// by hashes or signatures in room versions 3 and later.
//
// When the content hash does not match, Parse returns the redacted copy of
// the event together with an error wrapping ErrBadHash: the spec says to
// continue with that copy rather than drop the event, and stored redacted
// events come back this way too. Every other error comes with a nil event.
// Parse does not verify signatures (see VerifySignature) and never panics.
func Parse(raw []byte, roomVersion string) (ev *Event, err error) {
	defer func() {
		// Belt and braces for a federation entry point: any bug in the code
		// below surfaces as a rejected event rather than a crashed server.
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("%w: unparseable event (%v)", ErrInvalid, r)
		}
	}()
	if !Supported(roomVersion) {
		return nil, fmt.Errorf("%w: unsupported room version %q", ErrInvalid, roomVersion)
	}
	if len(raw) > maxInputBytes {
		return nil, fmt.Errorf("%w: %d bytes of input is too large for an event", ErrInvalid, len(raw))
	}
	canon, err := canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	all, ok := objectMembers(canon)
	if !ok {
		return nil, fmt.Errorf("%w: event must be a JSON object", ErrInvalid)
	}
	members := all[:0:0]
	for _, m := range all {
		if m.key != "unsigned" && m.key != "event_id" {
			members = append(members, m)
		}
	}
	ev, hash, err := eventFromMembers(members, roomVersion)
	if err != nil {
		return nil, err
	}
	if len(ev.Raw) > maxPDUBytes {
		return nil, fmt.Errorf("%w: event is %d bytes, over the %d-byte limit", ErrInvalid, len(ev.Raw), maxPDUBytes)
	}
	ref := sha256.Sum256(signingBytes(members, roomVersion))
	ev.ID = "$" + base64.RawURLEncoding.EncodeToString(ref[:])
	ev.fillCreateRoomID(roomVersion)

	unhashed := make([]member, 0, len(members))
	for _, m := range members {
		if m.key != "hashes" && m.key != "signatures" {
			unhashed = append(unhashed, m)
		}
	}
	want := sha256.Sum256(encodeObject(unhashed))
	if subtle.ConstantTimeCompare(want[:], hash) != 1 {
		return ev.Redact(roomVersion), fmt.Errorf("%w: event %s; continuing with its redacted copy", ErrBadHash, ev.ID)
	}
	return ev, nil
}

// eventFromMembers checks and extracts the PDU fields of a v10/v11 event
// from its canonical top-level members and returns the decoded sha256
// content hash. It sets Raw but not ID.
func eventFromMembers(members []member, roomVersion string) (*Event, []byte, error) {
	ev := &Event{}
	var hash, redactsRaw []byte
	seen := map[string]bool{}
	for _, m := range members {
		seen[m.key] = true
		var ok bool
		switch m.key {
		case "type":
			ev.Type, ok = jsonString(m.raw)
			ok = ok && ValidEventType(ev.Type)
		case "room_id":
			ev.RoomID, ok = jsonString(m.raw)
			ok = ok && ValidRoomIDFor(roomVersion, ev.RoomID)
		case "sender":
			ev.Sender, ok = jsonString(m.raw)
			ok = ok && ValidUserID(ev.Sender)
		case "state_key":
			var sk string
			sk, ok = jsonString(m.raw)
			ok = ok && len(sk) <= maxIDBytes
			ev.StateKey = &sk
		case "content":
			ev.Content, ok = m.raw, len(m.raw) > 0 && m.raw[0] == '{'
		case "prev_events":
			ev.PrevEvents, ok = eventIDList(m.raw)
		case "auth_events":
			ev.AuthEvents, ok = eventIDList(m.raw)
		case "depth":
			ev.Depth, ok = jsonInt(m.raw)
			ok = ok && ev.Depth >= 0
		case "origin_server_ts":
			ev.OriginServerTS, ok = jsonInt(m.raw)
		case "hashes":
			hash, ok = contentHash(m.raw)
		case "signatures":
			ok = wellFormedSignatures(m.raw)
		case "redacts":
			redactsRaw, ok = m.raw, true // checked once the type is known
		default:
			ok = true // other keys are legal and covered by the content hash
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: field %q is malformed", ErrInvalid, m.key)
		}
	}
	for _, key := range [...]string{"type", "room_id", "sender", "content", "prev_events", "auth_events", "depth", "origin_server_ts", "hashes", "signatures"} {
		if key == "room_id" && isHashedCreate(ev.Type, roomVersion) {
			// Its ID names the room. A room_id that is present anyway is
			// parsed and left for the auth rules to refuse (rule 1.2).
			continue
		}
		if !seen[key] {
			return nil, nil, fmt.Errorf("%w: missing %q", ErrInvalid, key)
		}
	}
	if ev.Type == "m.room.redaction" {
		if updatedRedactionRules(roomVersion) {
			// v11 moved redacts into content; a top-level copy is only for
			// old clients and never authoritative.
			ev.Redacts = gjson.GetBytes(ev.Content, "redacts").Str
		} else if redactsRaw != nil {
			var ok bool
			if ev.Redacts, ok = jsonString(redactsRaw); !ok {
				return nil, nil, fmt.Errorf("%w: field \"redacts\" is malformed", ErrInvalid)
			}
		}
	}
	ev.Raw = encodeObject(members)
	return ev, hash, nil
}

// fillCreateRoomID sets the room ID of a room version 12 create event
// that has no room_id from its ID, once the ID is known.
func (e *Event) fillCreateRoomID(roomVersion string) {
	if e.RoomID == "" && isHashedCreate(e.Type, roomVersion) {
		e.RoomID = RoomIDOfCreate(e.ID)
	}
}

// jsonString decodes a canonical JSON string value.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	res := gjson.ParseBytes(raw)
	return res.Str, res.Type == gjson.String && utf8.ValidString(res.Str)
}

// jsonInt decodes a canonical JSON integer (validate already bounded it).
func jsonInt(raw []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

func eventIDList(raw []byte) ([]string, bool) {
	res := gjson.ParseBytes(raw)
	if !res.IsArray() {
		return nil, false
	}
	ids := []string{}
	ok := true
	res.ForEach(func(_, v gjson.Result) bool {
		ok = v.Type == gjson.String && ValidEventID(v.Str)
		ids = append(ids, v.Str)
		return ok
	})
	return ids, ok
}

// contentHash returns the decoded hashes.sha256, which must be 32 bytes.
func contentHash(raw []byte) ([]byte, bool) {
	s := gjson.GetBytes(raw, "sha256")
	if !gjson.ParseBytes(raw).IsObject() || s.Type != gjson.String {
		return nil, false
	}
	sum, err := decodeBase64(s.Str)
	return sum, err == nil && len(sum) == sha256.Size
}

// wellFormedSignatures checks the {server: {key ID: signature}} shape.
func wellFormedSignatures(raw []byte) bool {
	res := gjson.ParseBytes(raw)
	if !res.IsObject() {
		return false
	}
	ok := true
	res.ForEach(func(_, server gjson.Result) bool {
		ok = server.IsObject()
		server.ForEach(func(_, sig gjson.Result) bool {
			ok = ok && sig.Type == gjson.String
			return ok
		})
		return ok
	})
	return ok
}

// decodeBase64 accepts the spec's unpadded base64 and, leniently, padded
// or URL-safe forms, which some implementations have emitted.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
