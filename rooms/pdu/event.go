package pdu

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors. Callers test them with errors.Is; messages add context.
var (
	// ErrInvalid marks input that is not a well-formed event for the room
	// version: bad JSON, a missing or mistyped field, a size limit exceeded.
	ErrInvalid = errors.New("invalid event")
	// ErrBadHash marks an event whose content hash does not match; Parse
	// returns the redacted copy alongside it, as the spec requires.
	ErrBadHash = errors.New("content hash mismatch")
	// ErrBadSignature marks a missing or wrong signature.
	ErrBadSignature = errors.New("bad signature")
	// ErrTooLarge marks an event over the spec's 65536-byte limit; it is
	// also an ErrInvalid.
	ErrTooLarge = errors.New("event too large")
)

const (
	// maxPDUBytes is the spec's limit on a whole event in canonical JSON.
	maxPDUBytes = 65536
	// maxInputBytes bounds what Parse will look at before dropping
	// "unsigned" (which may legitimately carry stripped invite state).
	maxInputBytes = 1 << 20
)

// Proto is an event before hashing and signing.
type Proto struct {
	// RoomID is the room's ID. A room version 12 create event has none
	// (its ID names the room): leave it empty, or set it to the expected
	// ID and Build refuses a mismatch.
	RoomID         string
	Sender         string
	Type           string
	StateKey       *string
	Content        json.RawMessage // a JSON object
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
	// Redacts is for m.room.redaction: v10 puts it top level; v11 puts it in
	// content and Build also keeps a top-level copy for older clients (the
	// v11 reference hash and signature do not cover top-level keys beyond
	// the protected list, so the copy cannot break federation).
	Redacts string
}

// Event is a hashed, signed event. Fields are read-only after Build/Parse.
type Event struct {
	ID string // "$" + URL-safe unpadded base64 of the reference hash
	// RoomID is the room_id field; for a room version 12 create event,
	// which has none, the room ID its ID derives (RoomIDOfCreate).
	RoomID         string
	Sender         string
	Type           string
	StateKey       *string
	Content        json.RawMessage // canonical JSON of content
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
	Redacts        string // from top level (v10) or content.redacts (v11)
	// Raw is the canonical JSON of the whole PDU with hashes and signatures,
	// without "unsigned" and "event_id": the form to store and to send.
	Raw []byte
}

// IsState reports whether the event has a state key and so replaces room state.
func (e *Event) IsState() bool { return e.StateKey != nil }

// StateKeyOr returns the state key, or def for a non-state event.
func (e *Event) StateKeyOr(def string) string {
	if e.StateKey == nil {
		return def
	}
	return *e.StateKey
}

// Build fills the content hash, signs with key and computes the event ID.
// It refuses anything a remote server would reject (see Parse) so Parley
// never emits an event that others cannot accept, and it refuses a sender
// on another server than key's because nobody could verify that signature.
func Build(p Proto, roomVersion string, key *SigningKey) (*Event, error) {
	if !Supported(roomVersion) {
		return nil, fmt.Errorf("%w: unsupported room version %q", ErrInvalid, roomVersion)
	}
	if key == nil || len(key.Private) != ed25519.PrivateKeySize || !validKeyID(key.KeyID) {
		return nil, fmt.Errorf("%w: unusable signing key", ErrInvalid)
	}
	hashedRoomID := isHashedCreate(p.Type, roomVersion)
	if err := checkProto(&p, key, roomVersion, hashedRoomID); err != nil {
		return nil, err
	}
	content, err := canonicalize(p.Content)
	if err != nil {
		return nil, fmt.Errorf("%w: content: %w", ErrInvalid, err)
	}
	if len(content) == 0 || content[0] != '{' {
		return nil, fmt.Errorf("%w: content must be a JSON object", ErrInvalid)
	}
	redacts, content, err := buildRedacts(p, content, roomVersion)
	if err != nil {
		return nil, err
	}

	members := make([]member, 0, 12)
	members = append(members,
		member{"auth_events", encodeStrings(p.AuthEvents)},
		member{"content", content},
		member{"depth", strconv.AppendInt(nil, p.Depth, 10)},
		member{"origin_server_ts", strconv.AppendInt(nil, p.OriginServerTS, 10)},
		member{"prev_events", encodeStrings(p.PrevEvents)},
	)
	if !hashedRoomID {
		members = append(members, member{"room_id", appendString(nil, p.RoomID)})
	}
	members = append(members,
		member{"sender", appendString(nil, p.Sender)},
		member{"type", appendString(nil, p.Type)},
	)
	if p.StateKey != nil {
		members = append(members, member{"state_key", appendString(nil, *p.StateKey)})
	}
	if redacts != "" {
		members = append(members, member{"redacts", appendString(nil, redacts)})
	}
	hash := sha256.Sum256(encodeObject(members))
	members = append(members, member{"hashes", encodeObject([]member{
		{"sha256", appendString(nil, base64.RawStdEncoding.EncodeToString(hash[:]))},
	})})
	signing := signingBytes(members, roomVersion)
	sig := ed25519.Sign(key.Private, signing)
	members = append(members, member{"signatures", encodeSignatures(key.ServerName, key.KeyID, sig)})

	raw := encodeObject(members)
	if len(raw) > maxPDUBytes {
		return nil, fmt.Errorf("%w: %w: event is %d bytes, over the %d-byte limit", ErrInvalid, ErrTooLarge, len(raw), maxPDUBytes)
	}
	ref := sha256.Sum256(signing)
	id := "$" + base64.RawURLEncoding.EncodeToString(ref[:])
	roomID := p.RoomID
	if hashedRoomID {
		roomID = RoomIDOfCreate(id)
		if p.RoomID != "" && p.RoomID != roomID {
			return nil, fmt.Errorf("%w: a room version %s create event names room %s, not %s", ErrInvalid, roomVersion, roomID, p.RoomID)
		}
	}
	return &Event{
		ID:             id,
		RoomID:         roomID,
		Sender:         p.Sender,
		Type:           p.Type,
		StateKey:       cloneString(p.StateKey),
		Content:        content,
		PrevEvents:     append([]string{}, p.PrevEvents...),
		AuthEvents:     append([]string{}, p.AuthEvents...),
		Depth:          p.Depth,
		OriginServerTS: p.OriginServerTS,
		Redacts:        redacts,
		Raw:            raw,
	}, nil
}

// isHashedCreate reports whether an event of eventType is a create event
// whose ID is its room's ID, and so has no room_id (MSC4291).
func isHashedCreate(eventType, roomVersion string) bool {
	return eventType == "m.room.create" && RoomIDFromCreate(roomVersion)
}

func checkProto(p *Proto, key *SigningKey, roomVersion string, hashedRoomID bool) error {
	switch {
	case !ValidEventType(p.Type):
		return fmt.Errorf("%w: type %q must be non-empty UTF-8 of at most %d bytes", ErrInvalid, p.Type, maxIDBytes)
	case p.StateKey != nil && (len(*p.StateKey) > maxIDBytes || !utf8.ValidString(*p.StateKey)):
		return fmt.Errorf("%w: state_key must be UTF-8 of at most %d bytes", ErrInvalid, maxIDBytes)
	case !ValidUserID(p.Sender):
		return fmt.Errorf("%w: sender %q is not a valid user ID", ErrInvalid, p.Sender)
	case Domain(p.Sender) != key.ServerName:
		return fmt.Errorf("%w: sender %s is not on this server (%s)", ErrInvalid, p.Sender, key.ServerName)
	case !hashedRoomID && !ValidRoomIDFor(roomVersion, p.RoomID):
		return fmt.Errorf("%w: room_id %q is not a valid room version %s room ID", ErrInvalid, p.RoomID, roomVersion)
	case p.Depth < 0 || p.Depth > maxSafeInt:
		return fmt.Errorf("%w: depth %d is outside [0, 2^53-1]", ErrInvalid, p.Depth)
	case p.OriginServerTS < -maxSafeInt || p.OriginServerTS > maxSafeInt:
		return fmt.Errorf("%w: origin_server_ts %d is outside the canonical JSON range", ErrInvalid, p.OriginServerTS)
	}
	for _, list := range [][]string{p.PrevEvents, p.AuthEvents} {
		for _, id := range list {
			if !ValidEventID(id) {
				return fmt.Errorf("%w: %q is not a room version 4+ event ID", ErrInvalid, id)
			}
		}
	}
	return nil
}

// buildRedacts places Proto.Redacts where roomVersion wants it and returns
// the (possibly updated) content.
func buildRedacts(p Proto, content []byte, roomVersion string) (string, []byte, error) {
	if p.Type != "m.room.redaction" {
		if p.Redacts != "" {
			return "", nil, fmt.Errorf("%w: redacts is only valid on m.room.redaction", ErrInvalid)
		}
		return "", content, nil
	}
	members, _ := objectMembers(content)
	rawInContent := findMember(members, "redacts")
	inContent, isString := jsonString(rawInContent)
	redacts := p.Redacts
	if updatedRedactionRules(roomVersion) {
		switch {
		case rawInContent != nil && !isString:
			return "", nil, fmt.Errorf("%w: content.redacts must be a string", ErrInvalid)
		case redacts == "":
			redacts = inContent
		case rawInContent != nil && inContent != redacts:
			return "", nil, fmt.Errorf("%w: content.redacts %q disagrees with Redacts %q", ErrInvalid, inContent, redacts)
		}
	}
	if !ValidEventID(redacts) {
		return "", nil, fmt.Errorf("%w: m.room.redaction needs a valid redacts event ID, got %q", ErrInvalid, redacts)
	}
	if updatedRedactionRules(roomVersion) && rawInContent == nil {
		members = append(members, member{"redacts", appendString(nil, redacts)})
		content = encodeObject(members)
	}
	return redacts, content, nil
}

func validKeyID(keyID string) bool {
	const prefix = "ed25519:"
	return len(keyID) > len(prefix) && keyID[:len(prefix)] == prefix && validKeyVersion(keyID[len(prefix):])
}

func encodeStrings(list []string) []byte {
	out := []byte{'['}
	for i, s := range list {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, s)
	}
	return append(out, ']')
}

func encodeSignatures(server, keyID string, sig []byte) []byte {
	inner := encodeObject([]member{{keyID, appendString(nil, base64.RawStdEncoding.EncodeToString(sig))}})
	return encodeObject([]member{{server, inner}})
}

func cloneString(s *string) *string {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}
