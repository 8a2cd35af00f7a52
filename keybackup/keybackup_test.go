package keybackup

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestReplace: the spec's order: is_verified, then the lower
// first_message_index, then the lower forwarded_count; ties keep the old.
func TestReplace(t *testing.T) {
	k := func(verified bool, fmi, fwd int64) *storage.BackupSession {
		return &storage.BackupSession{IsVerified: verified, FirstMessageIndex: fmi, ForwardedCount: fwd}
	}
	cases := []struct {
		name     string
		old, new *storage.BackupSession
		want     bool
	}{
		{"verified beats unverified despite a higher index", k(false, 0, 0), k(true, 9, 9), true},
		{"unverified never beats verified", k(true, 9, 9), k(false, 0, 0), false},
		{"lower index wins", k(false, 5, 0), k(false, 4, 9), true},
		{"higher index loses", k(false, 5, 9), k(false, 6, 0), false},
		{"same index, fewer forwards wins", k(true, 5, 2), k(true, 5, 1), true},
		{"same index, more forwards loses", k(true, 5, 2), k(true, 5, 3), false},
		{"all equal keeps the stored key", k(false, 5, 2), k(false, 5, 2), false},
	}
	for _, c := range cases {
		if got := Replace(c.old, c.new); got != c.want {
			t.Errorf("%s: Replace = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]bool{"1": true, "42": true, "0": false, "-1": false, "01": false, "x": false, "": false, "99999999999999999999": false} {
		if _, got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) ok = %v, want %v", in, got, want)
		}
	}
}
