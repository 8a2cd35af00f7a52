package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// erasedMark is stored as redacted_by on events erased without a
// redaction event, so that they count as redacted everywhere (a second
// erase, search, relations) though no event redacted them.
const erasedMark = "erased"

// EraseEvents rewrites the stored forms of sender's non-state events
// eventIDs in roomID to their redacted form, without sending a redaction
// event. An erased account's messages in rooms it has left need this: the
// account may no longer send into those rooms (auth requires membership),
// and nobody else should be made the sender of a redaction. Local readers
// (sync, /messages, federation backfill from this server) are served the
// redacted copies from then on, which is what the spec's m.erase asks
// ("users and servers which join after the erasure are served redacted
// copies"); copies other servers or clients already hold stay as they are.
// Events already redacted, not found, of another sender or state events are
// skipped. It returns how many it erased.
func (s *Service) EraseEvents(ctx context.Context, roomID, sender string, eventIDs []string) (int, error) {
	var targets []storage.Event
	for _, id := range eventIDs {
		ev, err := s.store.GetEvent(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("erase %s: %w", id, err)
		}
		if ev.RoomID != roomID || ev.Sender != sender || ev.StateKey != nil || ev.RedactedBy != "" {
			continue
		}
		targets = append(targets, ev)
	}
	if len(targets) == 0 {
		return 0, nil
	}
	n := 0
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		n = 0
		rs, err := b.room(ctx, roomID)
		if err != nil {
			return err
		}
		for _, t := range targets {
			orig, err := pdu.Parse(t.PDU, rs.version)
			if err != nil {
				return &txError{err: fmt.Errorf("erase: parse %s: %w", t.EventID, err)}
			}
			red := orig.Redact(rs.version)
			if err := b.tx.Redact(ctx, t.EventID, red.Raw, clientJSON(red), erasedMark, []byte(`{}`)); err != nil {
				return &txError{err: err}
			}
			n++
		}
		b.commit.Purged = append(b.commit.Purged, roomID) // drop cached copies (sync's timeline cache, shared deltas)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("erase in %s: %w", roomID, err)
	}
	return n, nil
}
