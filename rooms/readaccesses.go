package rooms

import (
	"context"
	"errors"
)

// ReadAccesses is ReadAccess for many rooms at once, for reads that span
// rooms (search): the same rule (accessFrom), with the histories of every
// room loaded in two queries and the memberships in one. Rooms the user
// may not read are left out of the map, not reported as errors.
func (s *Service) ReadAccesses(ctx context.Context, userID string, roomIDs []string) (map[string]*Access, error) {
	out := make(map[string]*Access, len(roomIDs))
	if len(roomIDs) == 0 {
		return out, nil
	}
	members, vis, err := s.store.MembershipHistories(ctx, userID, roomIDs)
	if err != nil {
		return nil, err
	}
	var forgotten map[string]bool // loaded once, when a departed room asks
	for _, roomID := range roomIDs {
		v := NewVisibility(userID, members[roomID], vis[roomID])
		a, err := s.accessFrom(roomID, v, func() (bool, error) {
			if forgotten == nil {
				ms, err := s.store.UserMemberships(ctx, userID, "")
				if err != nil {
					return false, err
				}
				forgotten = make(map[string]bool, len(ms))
				for _, m := range ms {
					forgotten[m.RoomID] = m.Forgotten
				}
			}
			return forgotten[roomID], nil
		})
		if errors.Is(err, ErrForbidden) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[roomID] = a
	}
	return out, nil
}
