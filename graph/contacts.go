package graph

import (
	"context"
	"sync"
	"time"
)

// Contacts caches each user's whole friend list and block list. A friend's
// presence change wakes the user and their incremental sync includes it;
// every to-device message asks whether its target blocked the sender (a
// room-key share asks for hundreds of users at once). Both lists are read
// far more often than they change. Entries live for ttl, and the client API
// forgets a user's lists after every friendship or block change made here,
// so a local change shows at once; the ttl only bounds how long a change
// made behind the server's back (an operator editing Neo4j) takes to show.
type Contacts struct {
	// Static after NewContacts.
	src ListSource
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[contactsKey]contactsEntry // guarded by mu
	gen     uint64                        // bumped by Forget; guarded by mu
}

// ListSource pages through a user's friends and blocks (a Store).
type ListSource interface {
	Friends(ctx context.Context, userID string, p Page) ([]string, string, error)
	Blocked(ctx context.Context, userID string, p Page) ([]string, string, error)
}

type contactsKey struct {
	userID  string
	blocked bool // the block list, else the friend list
}

type contactsEntry struct {
	ids     []string
	expires time.Time
}

// NewContacts caches up to max lists for ttl each.
func NewContacts(src ListSource, ttl time.Duration, max int) *Contacts {
	return &Contacts{src: src, ttl: ttl, max: max, entries: map[contactsKey]contactsEntry{}}
}

// Friends returns all of userID's friends.
func (c *Contacts) Friends(ctx context.Context, userID string) ([]string, error) {
	return c.list(ctx, contactsKey{userID: userID}, c.src.Friends)
}

// Blocked returns everyone userID blocked.
func (c *Contacts) Blocked(ctx context.Context, userID string) ([]string, error) {
	return c.list(ctx, contactsKey{userID: userID, blocked: true}, c.src.Blocked)
}

func (c *Contacts) list(ctx context.Context, k contactsKey,
	page func(ctx context.Context, userID string, p Page) ([]string, string, error)) ([]string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ids, nil
	}
	var all []string
	p := Page{Limit: 1000}
	for {
		ids, next, err := page(ctx, k.userID, p)
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
		if next == "" {
			break
		}
		p.From = next
	}
	c.mu.Lock()
	// A Forget while we read may have dropped a newer truth: answer with
	// what we read, but do not keep it.
	if c.gen == gen {
		if len(c.entries) >= c.max {
			clear(c.entries) // crude but bounded; a refill costs one query per list
		}
		c.entries[k] = contactsEntry{ids: all, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return all, nil
}

// Forget drops the users' cached lists, after a change to them.
func (c *Contacts) Forget(userIDs ...string) {
	c.mu.Lock()
	for _, u := range userIDs {
		delete(c.entries, contactsKey{userID: u})
		delete(c.entries, contactsKey{userID: u, blocked: true})
	}
	c.gen++
	c.mu.Unlock()
}
