package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/storage"
)

// ErrInvalidParam is a well-formed request whose parameter does not fit
// (M_INVALID_PARAM), such as a receipt's thread_id that the event is not in.
var ErrInvalidParam = errors.New("invalid parameter")

// Non-event streams go through the same writer as events, so every stream
// shares one position counter and one commit order.

// PutReceipt records a read receipt. A receipt older than the user's current
// one of the same type and thread is accepted and ignored: read markers only
// move forward, so unread counts never rise again.
//
// threadID is "" for an unthreaded receipt (it clears the main timeline and
// every thread up to the event), "main" for the main timeline only, or a
// thread root's event ID. The event must be in the thread named: the root
// and the main timeline's events are in "main", an event with an m.thread
// relation is in its root's thread; anything else is ErrInvalid, checked
// here so that the client API and federation refuse alike.
func (s *Service) PutReceipt(ctx context.Context, roomID, userID, receiptType, eventID, threadID string) error {
	evs, err := s.store.EventPositions(ctx, []string{eventID})
	if err != nil {
		return err
	}
	target, ok := evs[eventID]
	if !ok || target.RoomID != roomID {
		return fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	if threadID != "" {
		in, err := s.store.ThreadOf(ctx, eventID)
		if err != nil {
			return err
		}
		if in == "" {
			in = "main"
		}
		if in != threadID && !(eventID == threadID && in == "main") {
			return fmt.Errorf("%w: event %s is not in thread %s", ErrInvalidParam, eventID, threadID)
		}
	}
	var stored *storage.Receipt // set by the job when it writes one
	err = s.submit(ctx, userID, func(ctx context.Context, b *batch) error {
		stored = nil // a retried batch runs the job again
		rs, err := b.room(ctx, roomID)
		if err != nil {
			return err
		}
		if rs.membership(userID) != "join" {
			return fmt.Errorf("%w: you are not in this room", ErrForbidden)
		}
		cur, err := b.tx.ReceiptPos(ctx, roomID, userID, receiptType, threadID)
		if err != nil {
			return dbErr(err)
		}
		if cur >= target.Pos {
			return nil
		}
		pos := b.nextPos()
		r := storage.Receipt{
			RoomID: roomID, UserID: userID, Type: receiptType, ThreadID: threadID,
			EventID: eventID, EventPos: target.Pos, TS: b.s.cfg.Now().UnixMilli(), Pos: pos,
		}
		if err := b.tx.PutReceipt(ctx, r); err != nil {
			return dbErr(err)
		}
		stored = &r
		b.commit.RoomTouches = append(b.commit.RoomTouches, Touch{ID: roomID, Pos: pos, User: userID})
		return nil
	})
	if err == nil && stored != nil && s.cfg.ReceiptHook != nil {
		s.cfg.ReceiptHook(*stored)
	}
	return err
}

// PutAccountData stores global (roomID "") or per-room account data.
func (s *Service) PutAccountData(ctx context.Context, userID, roomID, typ string, content []byte) error {
	return s.submit(ctx, userID, func(ctx context.Context, b *batch) error {
		pos := b.nextPos()
		if err := b.tx.PutAccountData(ctx, userID, roomID, typ, string(content), pos); err != nil {
			return dbErr(err)
		}
		b.commit.UserTouches = append(b.commit.UserTouches, Touch{ID: userID, Pos: pos})
		return nil
	})
}

// ToDeviceMessage is one message for one device.
type ToDeviceMessage struct {
	UserID, DeviceID string
	Content          []byte
}

// SendToDevice queues messages for devices. With a txnId, a retry is a no-op.
// It stores what it is given: package todevice decides who may be reached
// and bounds how many (one job stays small), before calling it.
func (s *Service) SendToDevice(ctx context.Context, sender, senderDevice, txnID, typ string, msgs []ToDeviceMessage) error {
	key := txnKey{sender, senderDevice, "to_device:" + txnID}
	if txnID != "" {
		if _, err := s.store.TxnEvent(ctx, key.user, key.device, key.txn); err == nil {
			return nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return s.submitCost(ctx, sender, len(msgs), func(ctx context.Context, b *batch) error {
		if txnID != "" {
			if _, ok, err := b.lookupTxn(ctx, key); err != nil || ok {
				return err
			}
		}
		ts := b.s.cfg.Now().UnixMilli()
		for _, m := range msgs {
			pos := b.nextPos()
			if err := b.tx.InsertToDevice(ctx, storage.ToDevice{Pos: pos, UserID: m.UserID, DeviceID: m.DeviceID, Sender: sender, Type: typ, Content: string(m.Content), TS: ts}); err != nil {
				return dbErr(err)
			}
			b.commit.UserTouches = append(b.commit.UserTouches, Touch{ID: m.UserID, Pos: pos})
		}
		if txnID != "" {
			if err := b.tx.InsertTxn(ctx, key.user, key.device, key.txn, ""); err != nil {
				return dbErr(err)
			}
			b.rememberTxn(key, "")
		}
		return nil
	})
}

// SetPresence stores a presence change and wakes everyone who shares a room
// with the user, and alsoWake (their friends).
func (s *Service) SetPresence(ctx context.Context, p storage.Presence, alsoWake []string) error {
	return s.submit(ctx, p.UserID, func(ctx context.Context, b *batch) error {
		p.Pos = b.nextPos()
		if err := b.tx.PutPresence(ctx, p); err != nil {
			return dbErr(err)
		}
		b.commit.PeerTouches = append(b.commit.PeerTouches, Touch{ID: p.UserID, Pos: p.Pos, Presence: true})
		for _, u := range alsoWake {
			b.commit.UserTouches = append(b.commit.UserTouches, Touch{ID: u, Pos: p.Pos})
		}
		return nil
	})
}

// DeviceListChanged records that userID's devices or keys changed, so every
// peer's sync reports it in device_lists.changed.
func (s *Service) DeviceListChanged(ctx context.Context, userID string) error {
	return s.submit(ctx, userID, func(ctx context.Context, b *batch) error {
		pos := b.nextPos()
		if err := b.tx.InsertDeviceListChange(ctx, userID, pos); err != nil {
			return dbErr(err)
		}
		b.commit.PeerTouches = append(b.commit.PeerTouches, Touch{ID: userID, Pos: pos})
		return nil
	})
}

// Notice is one per-user notice to deliver through sync.
type Notice struct {
	UserID  string
	Type    string
	Content []byte // a JSON object
}

// NotifyUsers stores notices for users (friend requests, new followers) in
// one commit and wakes every device of each user. Once it returns, every
// later sync of those users includes them.
func (s *Service) NotifyUsers(ctx context.Context, notices []Notice) error {
	if len(notices) == 0 {
		return nil
	}
	return s.submitCost(ctx, "", len(notices), func(ctx context.Context, b *batch) error {
		ts := b.s.cfg.Now().UnixMilli()
		for _, n := range notices {
			pos := b.nextPos()
			if err := b.tx.InsertUserNotice(ctx, storage.UserNotice{Pos: pos, UserID: n.UserID, Type: n.Type, Content: string(n.Content), TS: ts}); err != nil {
				return dbErr(err)
			}
			b.commit.UserTouches = append(b.commit.UserTouches, Touch{ID: n.UserID, Pos: pos})
		}
		return nil
	})
}
