package clientapi

import (
	"testing"
	"time"
)

// TestTokenCacheDropRace: a lookup that began before a drop (logout,
// deactivation) must not cache its answer, or the dropped token would
// live on; and entries expire, so a deactivation by another process
// (the parley command) ends cached sessions within the TTL.
func TestTokenCacheDropRace(t *testing.T) {
	c := newTokenCache(10)
	s := &session{UserID: "@a:x", DeviceID: "D"}
	gen := c.generation()  // the request starts its database lookup...
	c.dropUser("@a:x", "") // ...an admin deactivates the account...
	c.put("h", s, gen)     // ...and the lookup's stale answer arrives.
	if _, ok := c.get("h"); ok {
		t.Errorf("get after a drop raced the lookup: got a cached session, want none")
	}
	c.put("h", s, c.generation())
	if _, ok := c.get("h"); !ok {
		t.Fatalf("get after a clean put: got nothing, want the session")
	}
	c.ttl = -time.Second
	c.put("h2", s, c.generation())
	if _, ok := c.get("h2"); ok {
		t.Errorf("get of an expired entry: got a session, want none")
	}
}
