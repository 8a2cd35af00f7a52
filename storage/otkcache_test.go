package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestOneTimeKeyCountsCached (issue 15 item 21): a device's one-time-key
// counts are read from the database once, and every upload, claim and
// device deletion shows in the next count.
func TestOneTimeKeyCountsCached(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		count := func(step string, want int) {
			t.Helper()
			counts, _, err := s.OneTimeKeyCounts(ctx, "@a:x", "D")
			if err != nil {
				t.Fatal(err)
			}
			if got := counts["signed_curve25519"]; got != want {
				t.Errorf("%s: count = %d, want %d", step, got, want)
			}
		}
		count("no keys", 0)
		for i := 0; i < 3; i++ {
			if err := s.PutOneTimeKey(ctx, "@a:x", "D", fmt.Sprint("signed_curve25519:k", i), "signed_curve25519", `{}`, false); err != nil {
				t.Fatal(err)
			}
		}
		count("after upload", 3)
		before := s.Queries()
		count("again", 3)
		if n := s.Queries() - before; n != 0 {
			t.Errorf("a repeated count made %d queries, want 0 (cached)", n)
		}
		if _, _, err := s.ClaimOneTimeKey(ctx, "@a:x", "D", "signed_curve25519"); err != nil {
			t.Fatal(err)
		}
		count("after claim", 2)
		if err := s.DeleteDevices(ctx, "@a:x", []string{"D"}); err != nil {
			t.Fatal(err)
		}
		count("after the device was deleted", 0)
	})
}
