package storage_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestIsStatement(t *testing.T) {
	for _, tc := range []struct {
		query, kind string
		want        bool
	}{
		{"INSERT INTO events (pos) VALUES ($1)", storage.StmtInsertEvent, true},
		{"\n\t\tINSERT INTO events(pos) VALUES ($1)", storage.StmtInsertEvent, true},
		{"INSERT INTO event_mentions (user_id) VALUES ($1)", storage.StmtInsertEvent, false},
		{"INSERT INTO events_archive (pos) VALUES ($1)", storage.StmtInsertEvent, false},
		{"UPDATE events SET pdu = $2 WHERE event_id = $1", storage.StmtRedact, true},
		{storage.StmtCommitted, storage.StmtCommitted, true},
		{"", storage.StmtInsertEvent, false},
	} {
		if got := storage.IsStatement(tc.query, tc.kind); got != tc.want {
			t.Errorf("IsStatement(%q, %q) = %v, want %v", tc.query, tc.kind, got, tc.want)
		}
	}
}

// TestStatementFault: a fault fails the statements it picks, on both
// engines, and only those; StmtCommitted reports a failure after a commit
// that is durable; clearing the fault restores the store.
func TestStatementFault(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected")
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		s.SetStatementFault(func(q string, args []driver.NamedValue) error {
			if storage.IsStatement(q, "INSERT INTO users") && storage.ArgsHold(args, "@bad:x") {
				return injected
			}
			return nil
		})
		if err := s.CreateUser(ctx, storage.User{UserID: "@bad:x", CreatedTS: 1}); !errors.Is(err, injected) {
			t.Errorf("CreateUser(picked) = %v, want the injected error", err)
		}
		if err := s.CreateUser(ctx, storage.User{UserID: "@good:x", CreatedTS: 1}); err != nil {
			t.Errorf("CreateUser(not picked) = %v, want nil", err)
		}

		s.SetStatementFault(func(q string, _ []driver.NamedValue) error {
			if q == storage.StmtCommitted {
				return injected
			}
			return nil
		})
		tx, err := s.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutAccountData(ctx, "@good:x", "", "org.example.t", `{"a":1}`, 1); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); !errors.Is(err, injected) {
			t.Errorf("Commit with a lost answer = %v, want the injected error", err)
		}
		s.SetStatementFault(nil)
		if got, err := s.GetAccountData(ctx, "@good:x", "", "org.example.t"); err != nil || got != `{"a":1}` {
			t.Errorf("account data after a commit whose answer was lost = %q, %v; want it durable", got, err)
		}

		s.SetStatementFault(func(q string, _ []driver.NamedValue) error {
			if q == storage.StmtCommit {
				return injected
			}
			return nil
		})
		tx, err = s.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutAccountData(ctx, "@good:x", "", "org.example.u", `{"b":2}`, 2); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); !errors.Is(err, injected) {
			t.Errorf("Commit with a failing commit = %v, want the injected error", err)
		}
		s.SetStatementFault(nil)
		if got, err := s.GetAccountData(ctx, "@good:x", "", "org.example.u"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("account data of a failed commit = %q, %v; want ErrNotFound", got, err)
		}
		if err := s.CreateUser(ctx, storage.User{UserID: "@bad:x", CreatedTS: 1}); err != nil {
			t.Errorf("CreateUser after the fault was cleared = %v, want nil", err)
		}
	})
}
