package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
		if req.StateKey != nil && req.Type == "m.room.member" {
			if err := checkMemberChange(rs, *req.StateKey, membershipOf(req.Content)); err != nil {
				return err
			}
		}
		ev, _, err := b.appendEvent(ctx, rs, pdu.Proto{Sender: req.Sender, Type: req.Type, StateKey: req.StateKey, Content: req.Content}, txn)
		if err != nil {
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
	Membership string // join, invite, leave, ban
	Reason     string
	IsDirect   bool
	Profile    Profile // the target's profile, for join and invite
	// ProfileUpdate re-sends a join to carry a changed display name or avatar.
	ProfileUpdate bool
}

// ChangeMembership appends an m.room.member event. Joining a room one is
// already joined to, or leaving one already left, is a no-op that returns the
// current member event's ID.
func (s *Service) ChangeMembership(ctx context.Context, req MembershipRequest) (string, error) {
	var eventID string
	err := s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		eventID = ""
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		current := rs.membership(req.Target)
		if current == req.Membership && req.Sender == req.Target && (current == "join" || current == "leave") && !req.ProfileUpdate {
			eventID = rs.get("m.room.member", req.Target).ID
			return nil
		}
		if req.Membership == "leave" && req.Sender == req.Target && current == "" {
			return fmt.Errorf("%w: %s is not in the room", ErrForbidden, req.Target)
		}
		if err := checkMemberChange(rs, req.Target, req.Membership); err != nil {
			return err
		}
		content := map[string]any{"membership": req.Membership}
		if req.Reason != "" {
			content["reason"] = req.Reason
		}
		if req.IsDirect {
			content["is_direct"] = true
		}
		if req.Membership == "join" || req.Membership == "invite" {
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
