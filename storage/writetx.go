package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// WriteTx is the single writer's transaction. The rooms writer puts a whole
// batch of sends, receipts and other stream writes into one WriteTx and
// commits it once: group commit. Positions come from the writer.
type WriteTx struct {
	tx     *sql.Tx
	store  *Store
	maxPos int64 // the highest position written; Commit records it
	// searchable counts the events stored for the search index to pick up
	// behind the writer (searchindex.go).
	searchable int
}

// wrote notes a position the transaction used.
func (w *WriteTx) wrote(pos int64) {
	if pos > w.maxPos {
		w.maxPos = pos
	}
}

// BeginWrite starts a write transaction.
func (s *Store) BeginWrite(ctx context.Context) (*WriteTx, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin write: %w", err)
	}
	return &WriteTx{tx: tx, store: s}, nil
}

// Commit makes the batch durable. Only after it returns may sends be acknowledged.
//
// It also records the highest position written in stream_watermark, so a
// restart continues above it even after the row that held it is deleted
// (delivered to-device messages are): positions live on in clients' sync
// tokens and must never be handed out twice.
func (w *WriteTx) Commit() error {
	if err := w.store.commitFaulted(w.tx); err != nil {
		return err
	}
	if w.maxPos > 0 {
		if _, err := w.tx.Exec(`INSERT INTO stream_watermark (id, pos) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET pos = CASE WHEN excluded.pos > stream_watermark.pos THEN excluded.pos ELSE stream_watermark.pos END`, w.maxPos); err != nil {
			_ = w.tx.Rollback()
			return fmt.Errorf("commit: watermark: %w", err)
		}
	}
	if err := w.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback abandons the batch.
func (w *WriteTx) Rollback() { _ = w.tx.Rollback() }

// InsertRoom creates a room's row.
func (w *WriteTx) InsertRoom(ctx context.Context, r Room) error {
	_, err := w.tx.ExecContext(ctx, `INSERT INTO rooms (room_id, room_version, creator, published, created_ts) VALUES ($1,$2,$3,$4,$5)`,
		r.RoomID, r.Version, r.Creator, boolInt(r.Published), r.CreatedTS)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("insert room: %w", err)
	}
	return nil
}

// AliasTaken reports whether alias is mapped already, inside the batch.
func (w *WriteTx) AliasTaken(ctx context.Context, alias string) (bool, error) {
	var n int
	if err := w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_aliases WHERE alias = $1`, alias).Scan(&n); err != nil {
		return false, fmt.Errorf("alias lookup: %w", err)
	}
	return n > 0, nil
}

// InsertAlias maps alias to a room inside the batch; ErrConflict when taken.
func (w *WriteTx) InsertAlias(ctx context.Context, alias, roomID, creator string) error {
	_, err := w.tx.ExecContext(ctx, `INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1,$2,$3)`, alias, roomID, creator)
	if isUniqueViolation(err) {
		return fmt.Errorf("insert alias: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert alias: %w", err)
	}
	return nil
}

// InsertEvent appends e to its room's log. Unless e.NotCurrent, a state
// event also becomes current state (current_state, memberships), and the
// change is recorded at e.Pos in current_state_deltas.
func (w *WriteTx) InsertEvent(ctx context.Context, e *Event, pdu []byte) error {
	w.wrote(e.Pos)
	var sk, membership any
	if e.StateKey != nil {
		sk = *e.StateKey
	}
	if e.Type == "m.room.member" {
		membership = e.Membership
	}
	_, err := w.tx.ExecContext(ctx, `INSERT INTO events (pos, event_id, room_id, type, state_key, sender, depth, origin_ts, membership,
			pdu, client, unsigned, txn_device, txn_id, notify, room_mention, state_group, prev_ids, auth_ids)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		e.Pos, e.EventID, e.RoomID, e.Type, sk, e.Sender, e.Depth, e.OriginTS, membership,
		string(pdu), string(e.Client), string(e.Unsigned), e.TxnDevice, e.TxnID, boolInt(e.Notify), boolInt(e.RoomMention), e.StateGroup,
		strings.Join(e.PrevIDs, " "), strings.Join(e.AuthIDs, " "))
	err = w.indexRelation(ctx, e, err) // relations.go
	if e.Pos <= 0 {
		err = w.indexSearch(ctx, e, err) // search.go: backfill sits below the index's watermark
	} else if _, ok := searchKeys[e.Type]; ok {
		w.searchable++ // indexed behind the writer (searchindex.go)
	}
	if isUniqueViolation(err) {
		return fmt.Errorf("insert event %s: %w", e.EventID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert event %s: %w", e.EventID, err)
	}
	if e.StateKey == nil || e.NotCurrent {
		return nil
	}
	if err := upsertCurrent(ctx, w.tx, e.RoomID, e.Type, *e.StateKey, e.EventID, e.Pos, e.Membership, e.Sender); err != nil {
		return err
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO current_state_deltas (pos, room_id, type, state_key, event_id) VALUES ($1,$2,$3,$4,$5)`,
		e.Pos, e.RoomID, e.Type, *e.StateKey, e.EventID); err != nil {
		return fmt.Errorf("record current state delta: %w", err)
	}
	return nil
}

// InsertMentions records the users an event mentions.
func (w *WriteTx) InsertMentions(ctx context.Context, roomID string, pos int64, userIDs []string) error {
	for _, u := range userIDs {
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO event_mentions (user_id, room_id, pos) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING`, u, roomID, pos); err != nil {
			return fmt.Errorf("insert mention: %w", err)
		}
	}
	return nil
}

// InsertTxn records the idempotency key of a send. The primary key makes a
// second insert of the same key fail, so a duplicate can never commit.
func (w *WriteTx) InsertTxn(ctx context.Context, userID, deviceID, txnID, eventID string) error {
	_, err := w.tx.ExecContext(ctx, `INSERT INTO txns (user_id, device_id, txn_id, event_id) VALUES ($1,$2,$3,$4)`, userID, deviceID, txnID, eventID)
	if isUniqueViolation(err) {
		return fmt.Errorf("insert txn: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert txn: %w", err)
	}
	return nil
}

// TxnEvent looks up an idempotency key inside the batch.
func (w *WriteTx) TxnEvent(ctx context.Context, userID, deviceID, txnID string) (string, error) {
	return txnEvent(ctx, w.tx, userID, deviceID, txnID)
}

// Redact replaces an event's stored forms with their redacted versions.
func (w *WriteTx) Redact(ctx context.Context, eventID string, pdu, client []byte, redactedBy string, unsigned []byte) error {
	_, err := w.tx.ExecContext(ctx, `UPDATE events SET pdu = $2, client = $3, redacted_by = $4, unsigned = $5, notify = 0, room_mention = 0 WHERE event_id = $1`,
		eventID, string(pdu), string(client), redactedBy, string(unsigned))
	if err != nil {
		return fmt.Errorf("redact %s: %w", eventID, err)
	}
	// A redacted message no longer highlights the users it mentioned.
	_, err = w.tx.ExecContext(ctx, `DELETE FROM event_mentions WHERE room_id = (SELECT room_id FROM events WHERE event_id = $1)
		AND pos = (SELECT pos FROM events WHERE event_id = $1)`, eventID)
	if err != nil {
		return fmt.Errorf("redact %s mentions: %w", eventID, err)
	}
	return w.unindexSearch(ctx, eventID) // search.go: its text is gone
}

// PutReceipt stores a user's receipt, replacing the older one of the same kind.
func (w *WriteTx) PutReceipt(ctx context.Context, r Receipt) error {
	w.wrote(r.Pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_pos, ts, pos)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id,
			event_pos = excluded.event_pos, ts = excluded.ts, pos = excluded.pos`,
		r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.EventPos, r.TS, r.Pos)
	if err != nil {
		return fmt.Errorf("put receipt: %w", err)
	}
	return nil
}

// ReceiptPos returns the event position of a user's receipt of one kind in
// one thread ("" for unthreaded), or 0.
func (w *WriteTx) ReceiptPos(ctx context.Context, roomID, userID, receiptType, threadID string) (int64, error) {
	var pos int64
	err := w.tx.QueryRowContext(ctx, `SELECT event_pos FROM receipts WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`, roomID, userID, receiptType, threadID).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// PutAccountData stores global (roomID "") or per-room account data.
func (w *WriteTx) PutAccountData(ctx context.Context, userID, roomID, typ, content string, pos int64) error {
	w.wrote(pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO account_data (user_id, room_id, type, content, pos) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, pos = excluded.pos`, userID, roomID, typ, content, pos)
	if err != nil {
		return fmt.Errorf("put account data: %w", err)
	}
	return nil
}

// InsertToDevice queues one to-device message for one device.
func (w *WriteTx) InsertToDevice(ctx context.Context, m ToDevice) error {
	w.wrote(m.Pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO to_device (pos, user_id, device_id, sender, type, content, ts) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		m.Pos, m.UserID, m.DeviceID, m.Sender, m.Type, m.Content, m.TS)
	if err != nil {
		return fmt.Errorf("insert to-device: %w", err)
	}
	return nil
}

// PutPresence stores a user's presence.
func (w *WriteTx) PutPresence(ctx context.Context, p Presence) error {
	w.wrote(p.Pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO presence (user_id, state, status_msg, last_active_ts, pos) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
			last_active_ts = excluded.last_active_ts, pos = excluded.pos`, p.UserID, p.State, p.StatusMsg, p.LastActiveTS, p.Pos)
	if err != nil {
		return fmt.Errorf("put presence: %w", err)
	}
	return nil
}

// InsertDeviceListChange records that a user's devices or keys changed.
func (w *WriteTx) InsertDeviceListChange(ctx context.Context, userID string, pos int64) error {
	w.wrote(pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO device_list_changes (pos, user_id) VALUES ($1,$2)`, pos, userID)
	if err != nil {
		return fmt.Errorf("insert device list change: %w", err)
	}
	return nil
}
