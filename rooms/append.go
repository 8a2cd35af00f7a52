package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// txnKey is a send's idempotency key.
type txnKey struct{ user, device, txn string }

// appendEvent builds the next event of rs from p, authorises it against the
// room's current state, and writes it into the batch. Nothing is written
// when the event is refused.
func (b *batch) appendEvent(ctx context.Context, rs *roomState, p pdu.Proto, txn *txnKey) (*pdu.Event, int64, error) {
	p.RoomID = rs.id
	p.PrevEvents, p.Depth = rs.prevEvents()
	if p.OriginServerTS == 0 {
		p.OriginServerTS = b.s.cfg.Now().UnixMilli()
	}
	auth := map[authrules.StateKey]*pdu.Event{}
	for _, k := range authrules.Needed(p.Type, p.StateKey, p.Sender, p.Content) {
		if ev := rs.get(k.Type, k.StateKey); ev != nil {
			auth[k] = ev
			if k.Type == "m.room.create" && pdu.RoomIDFromCreate(rs.version) {
				continue // implied by the room ID (MSC4291), never listed
			}
			p.AuthEvents = append(p.AuthEvents, ev.ID)
		}
	}
	ev, err := pdu.Build(p, rs.version, b.s.cfg.Key)
	if errors.Is(err, pdu.ErrTooLarge) {
		return nil, 0, fmt.Errorf("%w: the event is larger than the 65536 bytes an event may have", ErrTooLarge)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := authrules.Check(rs.version, ev, auth); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	if err := b.checkStateSize(rs, ev); err != nil {
		return nil, 0, err
	}
	if err := b.s.checkTier(rs, ev); err != nil {
		return nil, 0, err
	}
	pos, err := b.write(ctx, rs, ev, txn)
	return ev, pos, err
}

// write stores an authorised local event, which extends the room's current
// state, and advances the room's cached extremities and state. From here on
// every failure poisons the transaction.
func (b *batch) write(ctx context.Context, rs *roomState, ev *pdu.Event, txn *txnKey) (int64, error) {
	pos := b.nextPos()
	row := &storage.Event{
		Pos:      pos,
		EventID:  ev.ID,
		RoomID:   rs.id,
		Type:     ev.Type,
		StateKey: ev.StateKey,
		Sender:   ev.Sender,
		Depth:    ev.Depth,
		OriginTS: ev.OriginServerTS,
		Client:   clientJSON(ev),
		PrevIDs:  ev.PrevEvents,
		AuthIDs:  ev.AuthEvents,
	}
	if ev.Type == "m.room.member" {
		row.Membership = membershipOf(ev.Content)
	}
	var key authrules.StateKey
	var prev *stateEntry
	if ev.StateKey != nil {
		key = authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
		prev = rs.state[key]
		if prev != nil {
			row.Unsigned = prevContentJSON(prev.ev)
		}
	}
	if txn != nil {
		row.TxnDevice, row.TxnID = txn.device, txn.txn
	}
	cls := classify(ev, rs)
	row.Notify, row.RoomMention = cls.Notify, cls.RoomMention
	// A local event's prev_events are the room's extremities, so the state
	// before it is the current state: its group is the current group, or a
	// one-row delta on it for a state event.
	group, hops := rs.group, rs.groupHops
	if ev.StateKey != nil || (group == 0 && len(rs.state) > 0) {
		// A state event, or the first event since the upgrade to state
		// groups of a room that has none yet: it gets a snapshot.
		k := &key
		if ev.StateKey == nil {
			k = nil
		}
		var err error
		if group, hops, err = b.extendGroup(ctx, rs, k, ev.ID); err != nil {
			return 0, err
		}
	}
	row.StateGroup = group
	if err := b.tx.InsertEvent(ctx, row, ev.Raw); err != nil {
		return 0, dbErr(err)
	}
	if err := b.advanceExtremitiesTx(ctx, rs, ev); err != nil {
		return 0, err
	}
	if txn != nil {
		if err := b.tx.InsertTxn(ctx, txn.user, txn.device, txn.txn, ev.ID); err != nil {
			return 0, dbErr(err)
		}
	}
	if refs := localMedia(ev, b.s.cfg.ServerName); len(refs) > 0 {
		if err := b.tx.InsertMediaRefs(ctx, rs.id, pos, refs); err != nil {
			return 0, dbErr(err)
		}
	}

	b.setGroup(rs, group, hops)
	if ev.StateKey != nil {
		b.setState(rs, key, &stateEntry{ev: ev, pos: pos})
		b.commit.State = append(b.commit.State, StateChange{RoomID: rs.id, Pos: pos, Type: ev.Type, StateKey: *ev.StateKey, EventID: ev.ID, Membership: row.Membership})
	}
	thread, err := b.recordCounting(ctx, rs, row, ev, cls)
	if err != nil {
		return 0, err
	}
	b.commit.Events = append(b.commit.Events, CommittedEvent{
		RoomID: rs.id, Pos: pos, Type: ev.Type, StateKey: ev.StateKey, Membership: row.Membership, Sender: ev.Sender,
		Notify: cls.Notify, RoomMention: cls.RoomMention, Mentions: cls.Mentions, Thread: thread,
	})
	return pos, nil
}

// recordCounting stores the users ev mentions, and returns the thread it
// counts in for unread counts (threaded receipts): what makes an event
// count and push, for local and federated events alike.
func (b *batch) recordCounting(ctx context.Context, rs *roomState, row *storage.Event, ev *pdu.Event, cls pushrules.Class) (string, error) {
	if len(cls.Mentions) > 0 {
		if err := b.tx.InsertMentions(ctx, rs.id, row.Pos, cls.Mentions); err != nil {
			return "", dbErr(err)
		}
	}
	if ev.StateKey == nil && (cls.Notify || cls.RoomMention || len(cls.Mentions) > 0) {
		// Only counting events need it; the same rule as the relations index.
		if rel, ok := storage.RelationOf(row.Client); ok && rel.RelType == "m.thread" && rel.RelatesTo != ev.ID {
			return rel.RelatesTo, nil
		}
	}
	return "", nil
}

// setState changes one entry of the writer's cached current state (nil
// removes it), keeping the joined count and the cache's accounting, and
// undoes that on rollback.
func (b *batch) setState(rs *roomState, key authrules.StateKey, next *stateEntry) {
	prev := rs.state[key]
	oldJoined := rs.joined
	if key.Type == "m.room.member" {
		wasJoined := prev != nil && membershipOf(prev.ev.Content) == "join"
		isJoined := next != nil && membershipOf(next.ev.Content) == "join"
		if wasJoined && !isJoined {
			rs.joined--
		} else if !wasJoined && isJoined {
			rs.joined++
		}
	}
	if next != nil {
		rs.state[key] = next
	} else {
		delete(rs.state, key)
	}
	b.s.cache.stateChanged(rs, evOf(prev), evOf(next))
	b.onUndo(func() {
		rs.joined = oldJoined
		if prev != nil {
			rs.state[key] = prev
		} else {
			delete(rs.state, key)
		}
		b.s.cache.stateChanged(rs, evOf(next), evOf(prev))
	})
}

func membershipOf(content json.RawMessage) string {
	return gjson.GetBytes(content, "membership").String()
}

// clientJSON renders the client-server form of an event, without "unsigned":
// it is stored once and shared by every reader.
func clientJSON(ev *pdu.Event) []byte {
	buf := make([]byte, 0, len(ev.Content)+256)
	buf = append(buf, `{"content":`...)
	buf = append(buf, ev.Content...)
	buf = appendField(buf, "event_id", ev.ID)
	buf = append(buf, `,"origin_server_ts":`...)
	buf = fmt.Appendf(buf, "%d", ev.OriginServerTS)
	buf = appendField(buf, "room_id", ev.RoomID)
	buf = appendField(buf, "sender", ev.Sender)
	if ev.StateKey != nil {
		buf = appendField(buf, "state_key", *ev.StateKey)
	}
	buf = appendField(buf, "type", ev.Type)
	if ev.Redacts != "" {
		buf = appendField(buf, "redacts", ev.Redacts)
	}
	return append(buf, '}')
}

func appendField(buf []byte, name, value string) []byte {
	buf = append(buf, ',', '"')
	buf = append(buf, name...)
	buf = append(buf, '"', ':')
	return appendJSONString(buf, value)
}

// prevContentJSON is the static part of unsigned for a state event that
// replaces prev: clients show "X changed their name" from it.
func prevContentJSON(prev *pdu.Event) []byte {
	buf := make([]byte, 0, len(prev.Content)+128)
	buf = append(buf, `{"prev_content":`...)
	buf = append(buf, prev.Content...)
	buf = appendField(buf, "prev_sender", prev.Sender)
	buf = appendField(buf, "replaces_state", prev.ID)
	return append(buf, '}')
}
