package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestUnstorableTextRefused: text PostgreSQL cannot hold (U+0000, invalid
// UTF-8) is refused with ErrUnstorable on both engines, whatever the call,
// and nothing is written: the engines agree, and a route the API's own
// checks missed gets a client error instead of a 500.
func TestUnstorableTextRefused(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *storage.Store) {
		ctx := context.Background()
		cases := []struct {
			name string
			do   func() error
		}{
			{"user ID with NUL", func() error { return s.CreateUser(ctx, storage.User{UserID: "@a\x00:x", CreatedTS: 1}) }},
			{"display name invalid UTF-8", func() error {
				return s.CreateUser(ctx, storage.User{UserID: "@b:x", DisplayName: "\xff", CreatedTS: 1})
			}},
			{"account with NUL device", func() error {
				return s.CreateAccount(ctx, storage.User{UserID: "@c:x", CreatedTS: 1}, &storage.Device{UserID: "@c:x", DeviceID: "D\x00"})
			}},
			{"account data type with NUL, in a write transaction", func() error {
				tx, err := s.BeginWrite(ctx)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				return tx.PutAccountData(ctx, "@d:x", "", "t\x00", `{}`, 1)
			}},
			{"JSON bytes with NUL", func() error {
				tx, err := s.BeginWrite(ctx)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				return tx.PutAccountData(ctx, "@d:x", "", "t", string(json.RawMessage("{\"a\":\"\x00\"}")), 1)
			}},
		}
		for _, c := range cases {
			if err := c.do(); !errors.Is(err, storage.ErrUnstorable) {
				t.Errorf("%s: err = %v, want ErrUnstorable", c.name, err)
			}
		}
		for _, id := range []string{"@b:x", "@c:x"} {
			if _, err := s.GetUser(ctx, id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("GetUser(%s) after a refused write = %v, want ErrNotFound", id, err)
			}
		}
		// The refusal leaves the connection and the writer usable.
		if err := s.CreateAccount(ctx, storage.User{UserID: "@e:x", CreatedTS: 1}, &storage.Device{UserID: "@e:x", DeviceID: "D", TokenHash: "h"}); err != nil {
			t.Fatalf("CreateAccount after refusals: %v", err)
		}
		if devs, err := s.Devices(ctx, "@e:x"); err != nil || len(devs) != 1 {
			t.Errorf("Devices(@e:x) = %v, %v, want one device", devs, err)
		}
	})
}
