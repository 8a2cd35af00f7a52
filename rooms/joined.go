package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/storage"
)

// Joined reports whether userID is joined to roomID now. An unknown room is
// not an error, just not joined. It is the one "current member" check: the
// endpoints the spec reserves to members (typing, receipts, aliases) and
// the directory all ask it, with one indexed read.
func (s *Service) Joined(ctx context.Context, roomID, userID string) (bool, error) {
	m, err := s.store.GetMembership(ctx, roomID, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("membership of %s in %s: %w", userID, roomID, err)
	}
	return m.Membership == "join", nil
}
