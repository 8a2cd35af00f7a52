package rooms

import (
	"context"
	"fmt"
)

// checkNoticeLeave refuses a user's own leave of their server notices room
// (admin/notices.go): the operator must be able to reach every user. Any
// route to a leave runs it; service leaves (deactivation, room deletion)
// pass ByService and are let through.
func (s *Service) checkNoticeLeave(ctx context.Context, roomID string) error {
	notice, err := s.store.IsServerNoticeRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if notice {
		return fmt.Errorf("%w: you cannot leave the server notices room", ErrForbidden)
	}
	return nil
}
