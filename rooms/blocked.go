package rooms

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Blocked rooms. An operator blocks an abusive room through the admin API
// (package admin): from then on no local user may join it, be invited to
// it or send into it. Leaving, kicks, bans and redactions stay open so
// that moderators can still clean it up and people can go.
//
// The check lives here, in the writer's entry points (Send and
// ChangeMembership call checkNotBlocked), so every route to a send or a
// join runs it: the client API, the desks, profile updates. It is on the
// send hot path, so the set is an immutable map behind an atomic pointer:
// a lookup takes no lock and allocates nothing. Blocks are rare; each one
// copies the map.

// blockedRooms is the set of blocked room IDs.
type blockedRooms struct {
	// set holds the current map; it is replaced, never changed.
	set atomic.Pointer[map[string]struct{}]
	// mu serialises replacements, so two blocks at once both stick.
	mu sync.Mutex
}

func (br *blockedRooms) has(roomID string) bool {
	m := br.set.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[roomID]
	return ok
}

// set adds or removes roomID; the caller holds mu.
func (br *blockedRooms) put(roomID string, blocked bool) {
	old := br.set.Load()
	next := make(map[string]struct{}, 1)
	if old != nil {
		for id := range *old {
			next[id] = struct{}{}
		}
	}
	if blocked {
		next[roomID] = struct{}{}
	} else {
		delete(next, roomID)
	}
	br.set.Store(&next)
}

// loadBlocked reads the blocked rooms from the store; New calls it before
// the writer starts.
func (s *Service) loadBlocked(ctx context.Context) error {
	ids, err := s.store.BlockedRooms(ctx)
	if err != nil {
		return err
	}
	s.blocked.mu.Lock()
	defer s.blocked.mu.Unlock()
	for _, id := range ids {
		s.blocked.put(id, true)
	}
	return nil
}

// SetRoomBlocked blocks roomID (by is the admin, for the record) or lifts
// the block. The row is written first, so a block survives a restart once
// this returns; sends already queued in the writer may still commit.
func (s *Service) SetRoomBlocked(ctx context.Context, roomID string, blocked bool, by string) error {
	s.blocked.mu.Lock()
	defer s.blocked.mu.Unlock()
	if err := s.store.SetRoomBlocked(ctx, roomID, blocked, by, s.cfg.Now().UnixMilli()); err != nil {
		return err
	}
	s.blocked.put(roomID, blocked)
	return nil
}

// RoomBlocked reports whether roomID is blocked.
func (s *Service) RoomBlocked(roomID string) bool { return s.blocked.has(roomID) }

// checkNotBlocked refuses a send, join or invite into a blocked room.
func (s *Service) checkNotBlocked(roomID string) error {
	if s.blocked.has(roomID) {
		return fmt.Errorf("%w: this room has been blocked by the server administrator", ErrForbidden)
	}
	return nil
}
