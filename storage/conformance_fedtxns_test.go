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

func TestConformanceServerInRoom(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		insertEvents(t, s, []string{"!a:x"},
			evAt(1, "!a:x", "m.room.create", sk(""), "@v:x"),
			memberEv(2, "!a:x", "@v:x", "join"),
			memberEv(3, "!a:x", "@r:remote.example", "join"),
			memberEv(4, "!a:x", "@p:port.example:8448", "join"),
			memberEv(5, "!a:x", "@i:invited.example", "invite"),
			memberEv(6, "!a:x", "@l:left.example", "join"),
			memberEv(7, "!a:x", "@l:left.example", "leave"),
		)
		for _, tt := range []struct {
			room, server string
			want         bool
		}{
			{"!a:x", "remote.example", true},
			{"!a:x", "REMOTE.example", false}, // exact, on both engines
			{"!a:x", "example", false},        // a suffix of a name is not the name
			{"!a:x", "port.example:8448", true},
			{"!a:x", "port.example", false},
			{"!a:x", "invited.example", false},
			{"!a:x", "left.example", false},
			{"!a:x", "x", true},
			{"!b:x", "remote.example", false},
			{"!a:x", "%", false},
		} {
			if got, err := s.ServerInRoom(ctx, tt.room, tt.server); err != nil || got != tt.want {
				t.Errorf("ServerInRoom(%s, %s) = %v, %v; want %v", tt.room, tt.server, got, err, tt.want)
			}
		}
	})
}
