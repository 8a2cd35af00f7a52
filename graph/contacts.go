package graph

import (
	"context"
	"sync"
	"time"
)

// Contacts caches each user's whole friend list for presence: a friend's
// presence change wakes the user, and their incremental sync includes it,
// so both ask for the list often while it rarely changes. Entries live for
// ttl, and the client API forgets both sides of every friendship change
// made here, so a local change shows at once.
type Contacts struct {
	// Static after NewContacts.
	store Store
	ttl   time.Duration
	max   int

	mu      sync.Mutex
	entries map[string]contactsEntry // guarded by mu
}

type contactsEntry struct {
	friends []string
	expires time.Time
}

// NewContacts caches up to max users' friend lists for ttl each.
func NewContacts(store Store, ttl time.Duration, max int) *Contacts {
	return &Contacts{store: store, ttl: ttl, max: max, entries: map[string]contactsEntry{}}
}

// Friends returns all of userID's friends.
func (c *Contacts) Friends(ctx context.Context, userID string) ([]string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[userID]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.friends, nil
	}
	var all []string
	p := Page{Limit: 1000}
	for {
		ids, next, err := c.store.Friends(ctx, userID, p)
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
	if len(c.entries) >= c.max {
		clear(c.entries) // crude but bounded; a refill costs one query per user
	}
	c.entries[userID] = contactsEntry{friends: all, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return all, nil
}

// Forget drops cached lists, after a change to them.
func (c *Contacts) Forget(userIDs ...string) {
	c.mu.Lock()
	for _, u := range userIDs {
		delete(c.entries, u)
	}
	c.mu.Unlock()
}
