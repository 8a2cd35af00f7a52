package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// SetTiers sets the group size tiers. Call it once, before serving: the
// notifier reads them without a lock.
func (n *Notifier) SetTiers(t rooms.Tiers) { n.tiers = t.WithDefaults() }

// Tiers returns the group size tiers.
func (n *Notifier) Tiers() rooms.Tiers { return n.tiers }

// quietLocked reports whether room is above the small tier, where typing and
// receipts reach only their sender and presence does not travel. n.mu must
// be held.
func (n *Notifier) quietLocked(room string) bool {
	return n.tiers.Quiet(len(n.roomMembers[room]))
}

// QuietRooms returns which of rooms are above the small tier.
func (n *Notifier) QuietRooms(rooms map[string]int64) map[string]bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out map[string]bool
	for r := range rooms {
		if n.quietLocked(r) {
			if out == nil {
				out = map[string]bool{}
			}
			out[r] = true
		}
	}
	return out
}

// quietOf returns which rooms of a response are above the small tier,
// leaving out those whose timeline and state come from a shared delta
// (they need no lazy-loading here); nil, allocating nothing, when none is.
func (n *Notifier) quietOf(rms map[string]*roomResp) map[string]bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out map[string]bool
	for id, r := range rms {
		if !r.stripped() && r.delta == nil && n.quietLocked(id) {
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
		}
	}
	return out
}

// noteTierLocked records pos as room's latest tier change when a membership
// change took its joined count from before across a tier threshold, in
// either direction. n.mu must be held for writing.
func (n *Notifier) noteTierLocked(room string, before int, pos int64) {
	if n.tiers.Of(before) != n.tiers.Of(len(n.roomMembers[room])) {
		n.tierPos[room] = pos
	}
}

// tierNews returns which joined rooms of rms changed tier after their
// token, so that a member whose client last saw the old tier learns the new
// one, "small" included. It does not go by the timeline's member events: a
// timeline filter may have dropped them. A token older than the tables
// cannot tell, so every room whose timeline shows members come or go counts.
// nil, allocating nothing, when none did.
func (n *Notifier) tierNews(rms map[string]*roomResp, ids []string) map[string]bool {
	var out map[string]bool
	locked := false // taken at the first room that needs it
	defer func() {
		if locked {
			n.mu.RUnlock()
		}
	}()
	for _, id := range ids {
		r := rms[id]
		if r.since <= 0 || r.newlyJoin || (r.since < n.startPos && !membersChanged(r)) {
			continue
		}
		if !locked {
			n.mu.RLock()
			locked = true
		}
		if r.since < n.startPos || n.tierPos[id] > r.since {
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
		}
	}
	return out
}

// roomOrigin is what a room's tier event borrows from the room to look like
// a real state event: its creator as sender, its creation time.
type roomOrigin struct {
	creator string
	ts      int64
}

// addTierEvents puts the room's computed io.parley.room.tier event
// (rooms.Tiers.TierEvent says why it is computed, not stored) in the state
// of the joined rooms of rms that need it: rooms above the small tier whose
// members came or went (or are new to the client), and rooms whose tier
// changed since the token, whatever the tier now. A message alone costs
// nothing here.
func (s *Syncer) addTierEvents(ctx context.Context, rms map[string]*roomResp, ids []string, quiet map[string]bool) error {
	changed := s.n.tierNews(rms, ids)
	for _, id := range ids {
		r := rms[id]
		if r.delta != nil {
			continue // the shared delta's state has it
		}
		if !changed[id] && !(quiet[id] && (r.newlyJoin || r.fullState || membersChanged(r))) {
			continue
		}
		e, err := s.tierEvent(ctx, id)
		if err != nil {
			return err
		}
		r.state = append(r.state, e)
	}
	return nil
}

// tierEvent renders room's tier event. A room's creator and creation time
// never change, so they are read once per room and kept.
func (s *Syncer) tierEvent(ctx context.Context, roomID string) (storage.Event, error) {
	s.n.mu.RLock()
	o, ok := s.n.origins[roomID]
	s.n.mu.RUnlock()
	if !ok {
		room, err := s.store.GetRoom(ctx, roomID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storage.Event{}, fmt.Errorf("tier event of %s: %w", roomID, err)
		}
		// Every room created here has its row. Were one missing, the
		// event would go without sender and time rather than fail the sync.
		o = roomOrigin{creator: room.Creator, ts: room.CreatedTS}
		s.n.mu.Lock()
		s.n.origins[roomID] = o
		s.n.mu.Unlock()
	}
	t := s.n.tiers
	joined := s.n.JoinedCount(roomID)
	return storage.Event{RoomID: roomID, Type: rooms.TierEventType, StateKey: new(string),
		EventID: rooms.TierEventID(roomID, t.Of(joined)), Sender: o.creator, OriginTS: o.ts,
		Client: t.TierEvent(roomID, joined, o.creator, o.ts)}, nil
}

// quietAmong returns which of ids are above the small tier; nil, allocating
// nothing, when none is.
func (n *Notifier) quietAmong(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []string
	for _, id := range ids {
		if n.quietLocked(id) {
			out = append(out, id)
		}
	}
	return out
}

func keysOf(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// withReceiptNews returns the rooms of ids whose receipts a sync from since
// must read: newly joined rooms (every current receipt) and rooms with a
// receipt after since. Room touches are receipts; one of another kind only
// makes a room be asked needlessly. A token older than the tables asks all.
func (n *Notifier) withReceiptNews(ids []string, rms map[string]*roomResp, since int64) []string {
	if since < n.startPos {
		return ids
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := ids[:0:0]
	for _, id := range ids {
		if r := rms[id]; r.newlyJoin || r.fullState || n.receiptPos[id] > since {
			out = append(out, id)
		}
	}
	return out
}

// tierEventType names rooms.TierEventType where a parameter called rooms
// hides the package.
const tierEventType = rooms.TierEventType
