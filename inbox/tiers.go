package inbox

import (
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

// quietOf returns which rooms of a response are above the small tier; nil,
// allocating nothing, when none is.
func (n *Notifier) quietOf(rms map[string]*roomResp) map[string]bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out map[string]bool
	for id, r := range rms {
		if r.section != "invite" && n.quietLocked(id) {
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
		}
	}
	return out
}

// tierEvent is the room's computed io.parley.room.tier state event
// (rooms.Tiers.TierEvent says why it is computed, not stored).
var tierEvent = storage.Event{Type: rooms.TierEventType, StateKey: new(string)}

func (s *Syncer) tierEvent(roomID string) storage.Event {
	e := tierEvent
	e.RoomID = roomID
	e.Client = s.n.tiers.TierEvent(roomID, s.n.JoinedCount(roomID))
	return e
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
