package clientapi

import (
	"fmt"
	"testing"

	"github.com/parley-im/parley/inbox"
)

// TestFilterCacheEvictsOneAtTheBound: past its bound the cache makes room
// by dropping one entry, not by emptying itself (which sent every member of
// a big room back to the database for its filter at once).
func TestFilterCacheEvictsOneAtTheBound(t *testing.T) {
	var c filterCache
	f := &inbox.Filter{}
	for i := range filterCacheEntries {
		c.put(filterKey{user: fmt.Sprint("@u", i, ":x"), filter: "0"}, f)
	}
	c.put(filterKey{user: "@new:x", filter: "0"}, f)
	if got := len(c.entries); got != filterCacheEntries {
		t.Fatalf("entries after one past the bound = %d, want %d", got, filterCacheEntries)
	}
	if c.get(filterKey{user: "@new:x", filter: "0"}) == nil {
		t.Error("the newest entry is not kept")
	}
}
