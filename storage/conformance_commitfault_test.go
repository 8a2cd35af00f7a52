package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestConformanceCommitFault: SetCommitFault fails every commit path, the
// writer's WriteTx and the store's own transactions (CreateAccount and the
// rest of inTx) alike, on both engines: the call fails with the fault and
// nothing of it is stored. Cleared, the same calls commit.
func TestConformanceCommitFault(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected: disk full")
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		s.SetCommitFault(func() error { return injected })

		err := s.CreateAccount(ctx, storage.User{UserID: "@cf:x", CreatedTS: 1}, &storage.Device{UserID: "@cf:x", DeviceID: "D", TokenHash: "cf-th", CreatedTS: 1})
		if !errors.Is(err, injected) {
			t.Errorf("CreateAccount under a commit fault = %v, want the fault", err)
		}
		if _, err := s.GetUser(ctx, "@cf:x"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetUser after a failed commit = %v, want ErrNotFound", err)
		}

		tx, err := s.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutAccountData(ctx, "@cf:x", "", "org.example.cf", `{"a":1}`, 1); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); !errors.Is(err, injected) {
			t.Errorf("WriteTx.Commit under a commit fault = %v, want the fault", err)
		}
		if got, err := s.GetAccountData(ctx, "@cf:x", "", "org.example.cf"); err == nil && got != "" {
			t.Errorf("account data after a failed commit = %q, want none", got)
		}

		s.SetCommitFault(nil)
		if err := s.CreateAccount(ctx, storage.User{UserID: "@cf:x", CreatedTS: 1}, &storage.Device{UserID: "@cf:x", DeviceID: "D", TokenHash: "cf-th", CreatedTS: 1}); err != nil {
			t.Errorf("CreateAccount once the fault is cleared = %v, want nil", err)
		}
		if d, err := s.DeviceByToken(ctx, "cf-th"); err != nil || d.DeviceID != "D" {
			t.Errorf("DeviceByToken after the retry = %+v, %v; want device D", d, err)
		}
	})
}
