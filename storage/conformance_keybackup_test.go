package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parley-im/parley/keybackup"
	"github.com/parley-im/parley/storage"
)

// TestKeyBackupSessionCap: an upload that would take a backup version past
// its session cap fails with ErrBackupFull and changes nothing (count, etag
// and rows as before); replacing stored sessions does not count as new.
func TestKeyBackupSessionCap(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		const user = "@a:x"
		v, err := s.CreateBackupVersion(ctx, user, "alg", "{}")
		if err != nil {
			t.Fatal(err)
		}
		sess := func(ids ...string) []storage.BackupSession {
			var out []storage.BackupSession
			for _, id := range ids {
				out = append(out, storage.BackupSession{RoomID: "!r:x", SessionID: id, FirstMessageIndex: 5, SessionData: `{"d":"` + id + `"}`})
			}
			return out
		}
		etag, count, err := s.PutBackupSessions(ctx, user, v, sess("a", "b"), keybackup.Replace, 3)
		if err != nil || count != 2 {
			t.Fatalf("first put = count %d, %v; want 2, nil", count, err)
		}
		if _, _, err := s.PutBackupSessions(ctx, user, v, sess("c", "d"), keybackup.Replace, 3); !errors.Is(err, storage.ErrBackupFull) {
			t.Fatalf("put past the cap = %v, want ErrBackupFull", err)
		}
		info, err := s.GetBackupVersion(ctx, user, v)
		if err != nil || info.Count != 2 || info.Etag != etag {
			t.Errorf("after the refused put: count %d etag %d (%v), want 2 and %d", info.Count, info.Etag, err, etag)
		}
		if rows, _ := s.BackupSessions(ctx, user, v, "", ""); len(rows) != 2 {
			t.Errorf("rows after the refused put = %d, want 2", len(rows))
		}
		// A better copy of a stored key replaces it and adds nothing.
		better := sess("a", "c")
		better[0].FirstMessageIndex = 1
		_, count, err = s.PutBackupSessions(ctx, user, v, better, keybackup.Replace, 3)
		if err != nil || count != 3 {
			t.Fatalf("put of one replacement and one new = count %d, %v; want 3, nil", count, err)
		}
		if rows, _ := s.BackupSessions(ctx, user, v, "!r:x", "a"); len(rows) != 1 || rows[0].FirstMessageIndex != 1 {
			t.Errorf("session a = %+v, want first_message_index 1", rows)
		}
		// More than one chunk in one upload.
		var many []string
		for i := range 450 {
			many = append(many, fmt.Sprintf("m%d", i))
		}
		_, count, err = s.PutBackupSessions(ctx, user, v, sess(many...), keybackup.Replace, 0)
		if err != nil || count != 453 {
			t.Errorf("put of 450 more = count %d, %v; want 453, nil", count, err)
		}
		_, count, err = s.DeleteBackupSessions(ctx, user, v, "!r:x", "")
		if err != nil || count != 0 {
			t.Errorf("delete the room = count %d, %v; want 0", count, err)
		}
	})
}
