package channels

import (
	"context"
	"log/slog"
	"time"
)

// Deleting a channel. A big-V channel may have a million followers, and
// each follow is an edge in the graph to end: far too much for the owner's
// request. So Delete only hides the channel (every read answers 404 from
// then on, and it leaves followers' lists) and RunDeletions, a background
// job, ends the follows a page at a time and then drops the channel's rows.
// A restart resumes it, since the mark is in the store.

// Delete removes a channel; only its owner may. The channel is gone for
// every reader once this returns; its follows and rows go in the
// background (RunDeletions).
func (s *Service) Delete(ctx context.Context, user, id string) error {
	if _, err := s.owned(ctx, user, id); err != nil {
		return err
	}
	if err := s.store.MarkDeleting(ctx, id); err != nil {
		return err
	}
	select {
	case s.deletions <- struct{}{}:
	default: // one signal pending is enough: the job lists every marked channel
	}
	return nil
}

// deletionRetry is how long RunDeletions waits after a failure (the graph
// or the store down) before it tries again.
const deletionRetry = 10 * time.Second

// RunDeletions finishes the deletions of channels marked deleting: those
// left by an earlier run at start, then each new one, until ctx ends.
func (s *Service) RunDeletions(ctx context.Context, log *slog.Logger) {
	for {
		if err := s.finishDeletions(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("channels: finishing deletions", "err", err)
			t := time.NewTimer(deletionRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.deletions:
		}
	}
}

// finishDeletions ends the follows of every channel marked deleting, then
// drops its rows.
func (s *Service) finishDeletions(ctx context.Context) error {
	for {
		ids, err := s.store.Deleting(ctx)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			if err := s.unfollowAll(ctx, id); err != nil {
				return err
			}
			if err := s.store.DeleteChannel(ctx, id); err != nil {
				return err
			}
		}
	}
}
