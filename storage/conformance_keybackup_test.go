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
		v, err := s.CreateBackupVersion(ctx, user, "alg", "{}", 0)
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

		// The cap is per user: an older live version's keys count too,
		// until it is deleted.
		const bob = "@b:x"
		b1, _ := s.CreateBackupVersion(ctx, bob, "alg", "{}", 0)
		if _, _, err := s.PutBackupSessions(ctx, bob, b1, sess("a", "b"), keybackup.Replace, 3); err != nil {
			t.Fatal(err)
		}
		b2, err := s.CreateBackupVersion(ctx, bob, "alg", "{}", 2)
		if err != nil {
			t.Fatalf("second version with a cap of 2 = %v, want nil", err)
		}
		if _, err := s.CreateBackupVersion(ctx, bob, "alg", "{}", 2); !errors.Is(err, storage.ErrBackupFull) {
			t.Errorf("third live version with a cap of 2 = %v, want ErrBackupFull", err)
		}
		if _, _, err := s.PutBackupSessions(ctx, bob, b2, sess("c", "d"), keybackup.Replace, 3); !errors.Is(err, storage.ErrBackupFull) {
			t.Errorf("4 sessions over two live versions with a cap of 3 = %v, want ErrBackupFull", err)
		}
		if err := s.DeleteBackupVersion(ctx, bob, b1); err != nil {
			t.Fatal(err)
		}
		if _, count, err := s.PutBackupSessions(ctx, bob, b2, sess("c", "d"), keybackup.Replace, 3); err != nil || count != 2 {
			t.Errorf("after deleting the old version = count %d, %v; want 2, nil", count, err)
		}
		b3, err := s.CreateBackupVersion(ctx, bob, "alg", "{}", 2)
		if err != nil || b3 != b2+1 {
			t.Errorf("version after deleting one = %d, %v; want %d (numbers never reused)", b3, err, b2+1)
		}
	})
}
