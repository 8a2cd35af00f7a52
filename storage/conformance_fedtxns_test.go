package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestConformanceFederationTxns(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		if _, err := s.FederationTxn(ctx, "a.example", "t1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("FederationTxn(unrecorded) = %v, want ErrNotFound", err)
		}
		for _, r := range []struct {
			origin, txn, answer string
			ts                  int64
		}{
			{"a.example", "t1", `{"pdus":{}}`, 100},
			{"a.example", "t1", `{"pdus":{"$x":{}}}`, 150}, // a second record keeps the first
			{"b.example", "t1", `{"pdus":{"$b":{}}}`, 200},
			{"a.example", "t2", `{"pdus":{"$c":{"error":"é"}}}`, 300},
		} {
			if err := s.RecordFederationTxn(ctx, r.origin, r.txn, []byte(r.answer), r.ts); err != nil {
				t.Fatalf("RecordFederationTxn(%s, %s) = %v", r.origin, r.txn, err)
			}
		}
		for _, w := range []struct{ origin, txn, want string }{
			{"a.example", "t1", `{"pdus":{}}`},
			{"b.example", "t1", `{"pdus":{"$b":{}}}`},
			{"a.example", "t2", `{"pdus":{"$c":{"error":"é"}}}`},
		} {
			if got, err := s.FederationTxn(ctx, w.origin, w.txn); err != nil || string(got) != w.want {
				t.Errorf("FederationTxn(%s, %s) = %s, %v; want %s", w.origin, w.txn, got, err, w.want)
			}
		}
		if n, err := s.DeleteFederationTxnsBefore(ctx, 250, 1); err != nil || n != 1 {
			t.Errorf("DeleteFederationTxnsBefore(250, limit 1) = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteFederationTxnsBefore(ctx, 250, 10); err != nil || n != 1 {
			t.Errorf("second DeleteFederationTxnsBefore = %d, %v; want 1", n, err)
		}
		if _, err := s.FederationTxn(ctx, "a.example", "t2"); err != nil {
			t.Errorf("FederationTxn(a newer one) after the sweep = %v, want kept", err)
		}
	})
}
