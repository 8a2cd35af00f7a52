package rooms

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Group size tiers. A room's tier follows its count of joined members. Big
// group chats (WeChat caps groups at 500, DingTalk runs groups of 3,000 and
// more) cannot afford what a small group does: every typing notification and
// read receipt woke every member, and every member's presence reached every
// other. Above the small tier those stop fanning out; the top tier can also
// cap the room's size, or let only moderators post.
const (
	TierSmall = "small"
	TierLarge = "large"
	TierHuge  = "huge"
)

// TierEventType is the state event that tells clients a room's tier:
// {"tier": "large", "max_members": 5000}. It is computed from the room's
// joined count and served in state reads, never written: see TierEvent.
const TierEventType = "io.parley.room.tier"

// ModeratorLevel is the power level that counts as a moderator where a tier
// lets only moderators post (Matrix clients call 50 "Moderator").
const ModeratorLevel = 50

// Tiers configures the group size tiers. The zero value means the defaults
// documented on each field.
type Tiers struct {
	// LargeAbove is the joined count above which a room is large. Zero means 500.
	LargeAbove int
	// HugeAbove is the joined count above which a room is huge. Zero means 5000.
	HugeAbove int
	// MaxMembers caps a room's joined members; a join beyond it is refused.
	// Zero means no cap.
	MaxMembers int
	// HugeModeratorsOnly lets only moderators (power level 50 or more) send
	// message events in a huge room.
	HugeModeratorsOnly bool
}

// WithDefaults fills the zero fields.
func (t Tiers) WithDefaults() Tiers {
	if t.LargeAbove <= 0 {
		t.LargeAbove = 500
	}
	if t.HugeAbove <= 0 {
		t.HugeAbove = 5000
	}
	return t
}

// Of returns the tier of a room with joined members.
func (t Tiers) Of(joined int) string {
	switch {
	case joined > t.HugeAbove:
		return TierHuge
	case joined > t.LargeAbove:
		return TierLarge
	}
	return TierSmall
}

// Quiet reports whether a room of joined members is above the small tier:
// typing and receipts reach only their sender's own devices, members'
// presence is not sent to the room, and sync lazy-loads its members.
func (t Tiers) Quiet(joined int) bool { return joined > t.LargeAbove }

// maxOf is the tier's size cap, 0 for none: only the top tier has one.
func (t Tiers) maxOf(tier string) int {
	switch tier {
	case TierSmall:
		return t.LargeAbove
	case TierLarge:
		return t.HugeAbove
	}
	return t.MaxMembers
}

// TierEvent renders the tier state event of a room with joined members, in
// the client format. It is computed, not stored: a stored event would need a
// sender with power to send state, and no user the server could speak for
// always has it (the creator may have left). A computed event is always
// right, costs no write, and cannot flap as members come and go at a
// threshold.
//
// So that clients can treat it like any state event, it has the shape of
// one: sender is the room's creator (the one user every room has, even after
// they leave), origin_server_ts the room's creation time (createdTS, in ms),
// and the event ID is TierEventID's. All three depend only on the room and
// the tier, so the same tier is always the same event.
func (t Tiers) TierEvent(roomID string, joined int, creator string, createdTS int64) []byte {
	tier := t.Of(joined)
	b, _ := json.Marshal(struct {
		Type     string `json:"type"`
		StateKey string `json:"state_key"`
		Sender   string `json:"sender"`
		EventID  string `json:"event_id"`
		RoomID   string `json:"room_id"`
		TS       int64  `json:"origin_server_ts"`
		Content  struct {
			Tier       string `json:"tier"`
			MaxMembers int    `json:"max_members"`
		} `json:"content"`
	}{Type: TierEventType, Sender: creator, EventID: TierEventID(roomID, tier), RoomID: roomID, TS: createdTS,
		Content: struct {
			Tier       string `json:"tier"`
			MaxMembers int    `json:"max_members"`
		}{tier, t.maxOf(tier)}})
	return b
}

// TierEventID is the event ID of a room's tier event: "$" and the unpadded
// URL-safe base64 of SHA-256 over the room ID and the tier, the shape of a
// room v4+ event ID. It is stable per (room, tier) and cannot collide with a
// real event's ID, which hashes a whole event.
func TierEventID(roomID, tier string) string {
	sum := sha256.Sum256([]byte(TierEventType + "\x00" + roomID + "\x00" + tier))
	return "$" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkTier applies the top tier's rules to an authorised event before it is
// written: a join that would take the room past MaxMembers, and a message
// from a non-moderator in a huge room set to moderators only. Every route
// that appends an event passes here (/join, /invite accepted, the state PUT,
// createRoom), so no route gets around it.
func (s *Service) checkTier(rs *roomState, ev *pdu.Event) error {
	t := s.cfg.Tiers.WithDefaults()
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		if t.MaxMembers > 0 && membershipOf(ev.Content) == "join" && rs.membership(*ev.StateKey) != "join" && rs.joined >= t.MaxMembers {
			return fmt.Errorf("%w: this room is full: it has reached its cap of %d members", ErrForbidden, t.MaxMembers)
		}
		return nil
	}
	if t.HugeModeratorsOnly && ev.StateKey == nil && t.Of(rs.joined) == TierHuge &&
		rs.powerLevels().UserLevel(ev.Sender) < ModeratorLevel {
		return fmt.Errorf("%w: only moderators may post in a room of more than %d members", ErrForbidden, t.HugeAbove)
	}
	return nil
}

// withTier adds the computed tier event to a joined member's read of a
// room's current state, when the room is above the small tier.
func (s *Service) withTier(state []storage.Event, err error) ([]storage.Event, error) {
	if err != nil || len(state) == 0 {
		return state, err
	}
	joined := 0
	var creator string
	var createdTS int64
	for i := range state {
		switch {
		case state[i].Type == "m.room.member" && state[i].Membership == "join":
			joined++
		case state[i].Type == "m.room.create" && state[i].StateKeyOr() == "":
			creator, createdTS = state[i].Sender, state[i].OriginTS
		}
	}
	t := s.cfg.Tiers.WithDefaults()
	if !t.Quiet(joined) {
		return state, nil
	}
	roomID := state[0].RoomID
	return append(state, storage.Event{RoomID: roomID, Type: TierEventType, StateKey: new(string),
		EventID: TierEventID(roomID, t.Of(joined)), Sender: creator, OriginTS: createdTS,
		Client: t.TierEvent(roomID, joined, creator, createdTS)}), nil
}
