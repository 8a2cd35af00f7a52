package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// SendRequest is one client send: a message event, or a state event when
// StateKey is set.
type SendRequest struct {
	RoomID   string
	Sender   string
	DeviceID string
	TxnID    string // "" for sends without an idempotency key (state PUTs)
	Type     string
	StateKey *string
	Content  json.RawMessage
	// ByService marks a send a server-side service (the desks) makes on
	// its own schedule: it does not count against the sender's message
	// limit (actionlimit.go). Clients never set it.
	ByService bool
}

// Send appends a client's event to its room and returns the event ID once the
// event is committed. A repeated (sender, device, txnId) returns the first
// event's ID and writes nothing, across restarts. The key is looked up once,
// inside the writer's transaction: a first send, the common case, pays for
// no extra query.
func (s *Service) Send(ctx context.Context, req SendRequest) (string, error) {
	if req.Type == "m.room.redaction" {
		return "", fmt.Errorf("%w: use the redact endpoint to send m.room.redaction", ErrInvalid)
	}
	if err := s.checkNotBlocked(req.RoomID); err != nil {
		return "", err
	}
	if err := s.checkClientMember(ctx, req.Sender, req.Type, req.StateKey, req.Content); err != nil {
		return "", err
	}
	if !req.ByService {
		if err := s.cfg.Actions.message(req.Sender); err != nil {
			return "", err
		}
	}
	isMember := req.StateKey != nil && req.Type == "m.room.member"
	if isMember && membershipOf(req.Content) == "invite" && pdu.Domain(*req.StateKey) != s.cfg.ServerName {
		// An invite of another server's user needs its server's signature
		// first, whatever the route (remote_invite.go).
		return s.inviteRemote(ctx, MembershipRequest{RoomID: req.RoomID, Sender: req.Sender, Target: *req.StateKey, Membership: "invite",
			Reason: gjson.GetBytes(req.Content, "reason").String(), IsDirect: gjson.GetBytes(req.Content, "is_direct").Bool()})
	}
	var eventID string
	err := s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		eventID = ""
		var txn *txnKey
		if req.TxnID != "" {
			txn = &txnKey{req.Sender, req.DeviceID, req.TxnID}
			if id, ok, err := b.lookupTxn(ctx, *txn); err != nil || ok {
				eventID = id
				return err
			}
		}
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		content := req.Content
		if isMember {
			if content, err = b.memberContent(ctx, rs, req.Sender, *req.StateKey, content); err != nil {
				return err
			}
		}
		ev, _, err := b.appendEvent(ctx, rs, pdu.Proto{Sender: req.Sender, Type: req.Type, StateKey: req.StateKey, Content: content}, txn)
		if err != nil {
			if !isMember && errors.Is(err, ErrForbidden) && rs.membership(req.Sender) != "join" {
				// The auth rules refuse a non-member with a text that tells
				// an existing room from an unknown one. Checked only on
				// refusal, so the send path pays nothing for it.
				return errNotInRoom(req.RoomID)
			}
			return err
		}
		if txn != nil {
			b.rememberTxn(*txn, ev.ID)
		}
		eventID = ev.ID
		return nil
	})
	if err != nil {
		return "", err // the writer may still be running fn: eventID is not ours to read
	}
	return eventID, nil
}

// lookupTxn finds a txnId used before, in this batch or in the database.
func (b *batch) lookupTxn(ctx context.Context, k txnKey) (string, bool, error) {
	if id, ok := b.txns[k]; ok {
		return id, true, nil
	}
	id, err := b.tx.TxnEvent(ctx, k.user, k.device, k.txn)
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, dbErr(err)
	}
	return id, true, nil
}

func (b *batch) rememberTxn(k txnKey, eventID string) {
	if b.txns == nil {
		b.txns = map[txnKey]string{}
	}
	b.txns[k] = eventID
	b.onUndo(func() { delete(b.txns, k) })
}

// memberContent applies the writer's checks to a member event a client
// wrote through the state PUT, and returns the content to send: for a
// restricted join, with the authoriser the server chose.
func (b *batch) memberContent(ctx context.Context, rs *roomState, sender, target string, content json.RawMessage) (json.RawMessage, error) {
	membership := membershipOf(content)
	if sender != target && rs.membership(sender) != "join" {
		return nil, errNotInRoom(rs.id)
	}
	if err := checkMemberChange(rs, target, membership); err != nil {
		return nil, err
	}
	if membership != "join" || sender != target {
		return content, nil
	}
	via, err := b.restrictedJoinVia(ctx, rs, target)
	if err != nil || via == "" {
		return content, err
	}
	return withJoinAuthoriser(content, via)
}

// checkMemberChange adds the server-side rules the auth rules leave to the
// server: nothing here may loosen them.
func checkMemberChange(rs *roomState, target, membership string) error {
	if membership == "invite" && rs.membership(target) == "join" {
		return fmt.Errorf("%w: %s is already in the room", ErrForbidden, target)
	}
	return nil
}

// MembershipRequest changes one user's membership.
type MembershipRequest struct {
	RoomID     string
	Sender     string
	Target     string
	Membership string // join, invite, knock, leave, ban, or unban (a leave of a banned user)
	Reason     string
	IsDirect   bool
	Profile    Profile // the target's profile, for join and invite
	// ProfileUpdate re-sends a join to carry a changed display name or avatar.
	ProfileUpdate bool
	// ByService marks an invite a server-side service (the desks) makes at
	// the invitee's own request or an operator's: the MembershipPolicy,
	// which guards users from other people, is not asked; nor are the
	// join and invite limits (actionlimit.go), for the joins a service
	// makes too; and a leave it makes may leave a server notices room
	// (notices.go). Clients never set it.
	ByService bool
}

// ChangeMembership appends an m.room.member event. Joining a room one is
// already joined to, or leaving one already left, is a no-op that returns the
// current member event's ID.
//
// A change to another user by someone not joined to the room gets the
// answer of an unknown room, whatever the target's membership: an outsider
// learns nothing from /unban, /kick or /ban. An unban is checked in the
// order caller's membership, caller's power, then target's membership.
func (s *Service) ChangeMembership(ctx context.Context, req MembershipRequest) (string, error) {
	if req.Membership == "join" || req.Membership == "invite" || req.Membership == "knock" {
		if err := s.checkNotBlocked(req.RoomID); err != nil {
			return "", err
		}
	}
	if req.Membership == "leave" && req.Sender == req.Target && !req.ByService {
		if err := s.checkNoticeLeave(ctx, req.RoomID); err != nil { // notices.go
			return "", err
		}
	}
	if req.Membership == "invite" && !req.ByService {
		if err := s.checkInvite(ctx, req.Sender, req.Target); err != nil {
			return "", err
		}
		if err := s.cfg.Actions.invite(req.Sender, req.RoomID, req.Target); err != nil {
			return "", err
		}
	}
	// A knock is a request to join: the same limit.
	if (req.Membership == "join" || req.Membership == "knock") && req.Sender == req.Target && !req.ProfileUpdate && !req.ByService {
		if err := s.cfg.Actions.join(req.Sender); err != nil {
			return "", err
		}
	}
	if req.Membership == "invite" && pdu.Domain(req.Target) != s.cfg.ServerName {
		return s.inviteRemote(ctx, req) // remote_invite.go
	}
	var eventID string
	err := s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		eventID = ""
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		if (req.Sender != req.Target || req.Membership == "unban") && rs.membership(req.Sender) != "join" {
			return errNotInRoom(req.RoomID)
		}
		membership := req.Membership
		current := rs.membership(req.Target)
		if req.Sender == req.Target && (membership == "join" || membership == "leave") && current != "join" {
			if err := rs.checkResident(b.s.cfg.ServerName); err != nil {
				return err // remote_join.go: only a resident server can place it
			}
		}
		if membership == "unban" {
			if pl := rs.powerLevels(); pl.UserLevel(req.Sender) < pl.Ban {
				return fmt.Errorf("%w: unbanning needs power level %d", ErrForbidden, pl.Ban)
			}
			if current != "ban" {
				return fmt.Errorf("%w: that user is not banned", ErrForbidden)
			}
			membership = "leave"
		}
		if current == membership && req.Sender == req.Target && (current == "join" || current == "leave") && !req.ProfileUpdate {
			eventID = rs.get("m.room.member", req.Target).ID
			return nil
		}
		if membership == "leave" && req.Sender == req.Target && current == "" {
			return fmt.Errorf("%w: %s is not in the room", ErrForbidden, req.Target)
		}
		if err := checkMemberChange(rs, req.Target, membership); err != nil {
			return err
		}
		content := map[string]any{"membership": membership}
		if membership == "join" && req.Sender == req.Target {
			via, err := b.restrictedJoinVia(ctx, rs, req.Target)
			if err != nil {
				return err
			}
			if via != "" {
				content["join_authorised_via_users_server"] = via
			}
		}
		if req.Reason != "" {
			content["reason"] = req.Reason
		}
		if req.IsDirect {
			content["is_direct"] = true
		}
		if membership == "join" || membership == "invite" || membership == "knock" {
			if req.Profile.DisplayName != "" {
				content["displayname"] = req.Profile.DisplayName
			}
			if req.Profile.AvatarURL != "" {
				content["avatar_url"] = req.Profile.AvatarURL
			}
		}
		ev, _, err := b.appendEvent(ctx, rs, pdu.Proto{Sender: req.Sender, Type: "m.room.member", StateKey: strPtr(req.Target), Content: mustJSON(content)}, nil)
		if err != nil {
			return err
		}
		eventID = ev.ID
		return nil
	})
	if err != nil {
		return "", err // the writer may still be running fn: eventID is not ours to read
	}
	return eventID, nil
}

// RedactRequest redacts one event.
type RedactRequest struct {
	RoomID, Sender, DeviceID, TxnID string
	EventID                         string // the event to redact
	Reason                          string
	// ByService marks a redaction an operator action makes (erasing a
	// deactivated user's messages): no message limit. Clients never set it.
	ByService bool
}

// Redact appends an m.room.redaction and strips the target's stored content.
// The sender must have the room's redact level, or be the target's sender.
func (s *Service) Redact(ctx context.Context, req RedactRequest) (string, error) {
	if req.TxnID != "" {
		if id, err := s.store.TxnEvent(ctx, req.Sender, req.DeviceID, req.TxnID); err == nil {
			return id, nil
		}
	}
	target, err := s.store.GetEvent(ctx, req.EventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && target.RoomID != req.RoomID) {
		return "", fmt.Errorf("%w: event %s", ErrNotFound, req.EventID)
	}
	if err != nil {
		return "", err
	}
	if !req.ByService {
		if err := s.cfg.Actions.message(req.Sender); err != nil {
			return "", err
		}
	}
	var eventID string
	err = s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		eventID = ""
		txn := &txnKey{req.Sender, req.DeviceID, req.TxnID}
		if req.TxnID != "" {
			if id, ok, err := b.lookupTxn(ctx, *txn); err != nil || ok {
				eventID = id
				return err
			}
		} else {
			txn = nil
		}
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		pl := rs.powerLevels()
		if target.Sender != req.Sender && pl.UserLevel(req.Sender) < pl.Redact {
			return fmt.Errorf("%w: redacting another user's event needs power level %d", ErrForbidden, pl.Redact)
		}
		content := map[string]any{"redacts": req.EventID}
		if req.Reason != "" {
			content["reason"] = req.Reason
		}
		ev, _, err := b.appendEvent(ctx, rs, pdu.Proto{Sender: req.Sender, Type: "m.room.redaction", Content: mustJSON(content), Redacts: req.EventID}, txn)
		if err != nil {
			return err
		}
		if txn != nil {
			b.rememberTxn(*txn, ev.ID)
		}
		eventID = ev.ID
		return b.applyRedaction(ctx, rs, target, ev)
	})
	if err != nil {
		return "", err // the writer may still be running fn: eventID is not ours to read
	}
	return eventID, nil
}

// applyRedaction rewrites the target's stored forms. The redaction event is
// already in the batch, so failures here poison it.
func (b *batch) applyRedaction(ctx context.Context, rs *roomState, target storage.Event, redaction *pdu.Event) error {
	if target.RedactedBy != "" {
		return nil
	}
	orig, err := pdu.Parse(target.PDU, rs.version)
	if err != nil {
		return dbErr(fmt.Errorf("parse %s: %w", target.EventID, err))
	}
	red := orig.Redact(rs.version)
	unsigned := append([]byte(`{"redacted_because":`), clientJSON(redaction)...)
	unsigned = append(unsigned, '}')
	if err := b.tx.Redact(ctx, target.EventID, red.Raw, clientJSON(red), redaction.ID, unsigned); err != nil {
		return dbErr(err)
	}
	if target.StateKey != nil {
		key := keyOf(target.Type, *target.StateKey)
		if cur := rs.state[key]; cur != nil && cur.ev.ID == target.EventID {
			rs.state[key] = &stateEntry{ev: red, pos: cur.pos}
			b.s.cache.stateChanged(rs, cur.ev, red)
			b.onUndo(func() { rs.state[key] = cur; b.s.cache.stateChanged(rs, red, cur.ev) })
		}
	}
	return nil
}

// RoomVersion returns a room's version, from the writer's cache or the store.
func (s *Service) RoomVersion(ctx context.Context, roomID string) (string, error) {
	r, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	return r.Version, err
}
