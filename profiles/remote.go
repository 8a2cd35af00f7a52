package profiles

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
)

// Remote asks a user's own server for their profile (federation's
// query/profile). An answer that the user or profile does not exist wraps
// ErrNotFound; any other error means the server could not be asked.
type Remote interface {
	QueryProfile(ctx context.Context, userID string) (Profile, error)
}

// ErrUnavailable: the user's server could not be asked (down, refused, or
// answered nonsense). The client API answers 502, as Synapse does.
var ErrUnavailable = errors.New("profile server unavailable")

// Remote profile cache bounds. A profile changes rarely and a client asks
// for the same profiles again and again (room member lists), so a short
// cache spares the other server; it also bounds how often an
// unauthenticated /profile request makes this server dial out for one user.
const (
	// DefaultRemoteTTL is how long an answer (found or not) is kept.
	DefaultRemoteTTL = time.Minute
	// maxRemoteCached bounds the cache; when full, expired entries go
	// first, then arbitrary ones.
	maxRemoteCached = 10_000
)

// remoteCache holds other servers' answers. Its fields are guarded by mu;
// remote and ttl are static after SetRemote.
type remoteCache struct {
	remote Remote
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]remoteEntry // user ID -> answer; guarded by mu
}

type remoteEntry struct {
	p        Profile
	notFound bool
	until    time.Time
}

// SetRemote lets Get and Field answer for other servers' users by asking
// r, keeping answers for ttl (0 means DefaultRemoteTTL). Call it before
// the service is used; without it other servers' users are not found.
func (s *Service) SetRemote(r Remote, ttl time.Duration) {
	if ttl <= 0 {
		ttl = DefaultRemoteTTL
	}
	s.remote = &remoteCache{remote: r, ttl: ttl, now: time.Now, entries: map[string]remoteEntry{}}
}

// isRemote reports whether userID is a well-formed user of another server
// that the service may ask about.
func (s *Service) isRemote(userID string) bool {
	return s.remote != nil && pdu.ValidUserID(userID) && pdu.Domain(userID) != s.serverName
}

// remoteGet answers for another server's user from the cache or by asking
// the user's server.
func (c *remoteCache) get(ctx context.Context, userID string) (Profile, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[userID]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.notFound {
			return Profile{}, errNoProfile
		}
		return e.p, nil
	}
	p, err := c.remote.QueryProfile(ctx, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		e = remoteEntry{notFound: true, until: now.Add(c.ttl)}
	case err != nil:
		return Profile{}, fmt.Errorf("%w: could not ask %s: %w", ErrUnavailable, pdu.Domain(userID), err)
	default:
		if len(p.DisplayName) > 4*MaxDisplayNameChars || len(p.AvatarURL) > MaxAvatarURLBytes {
			return Profile{}, fmt.Errorf("%w: %s answered a profile over the limits", ErrUnavailable, pdu.Domain(userID))
		}
		e = remoteEntry{p: p, until: now.Add(c.ttl)}
	}
	c.mu.Lock()
	if len(c.entries) >= maxRemoteCached {
		c.evictLocked(now)
	}
	c.entries[userID] = e
	c.mu.Unlock()
	if e.notFound {
		return Profile{}, errNoProfile
	}
	return e.p, nil
}

// evictLocked makes room: expired entries, then arbitrary ones down to
// three quarters of the bound. Caller holds mu.
func (c *remoteCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < maxRemoteCached*3/4 {
			break
		}
		delete(c.entries, k)
	}
}
