package clientapi

import (
	"context"
	"time"

	"github.com/parley-im/parley/apierr"
)

// admitFullSync guards the syncs that carry every joined room's whole state
// (an initial sync, or full_state=true): one of them over big rooms builds
// tens of megabytes, and a burst of them in parallel took the server's memory
// past a gigabyte. Each user gets a small token bucket of them (429
// M_LIMIT_EXCEEDED beyond it; exempt users skip it), and server-wide at most
// MaxConcurrentFullSyncs are built at once: the rest wait their turn, or
// until their client gives up. Incremental syncs, which long-poll, pass
// freely. The returned release must be called when the response is built.
func (a *API) admitFullSync(ctx context.Context, userID string) (release func(), err error) {
	if a.cfg.FullSyncLimiter != nil && !a.exempt[userID] {
		if ok, retry := a.cfg.FullSyncLimiter.Allow(userID, time.Now()); !ok {
			return nil, apierr.LimitExceeded(retry.Milliseconds() + 1)
		}
	}
	select {
	case a.fullSyncs <- struct{}{}:
		return a.releaseFullSync, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *API) releaseFullSync() { <-a.fullSyncs }
