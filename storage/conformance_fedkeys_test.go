package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/storage"
)

// Conformance of the federation key tables (migration 022).
func TestConformanceFederationKeys(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"own keys retire", confOwnKeys},
		{"remote keys", confRemoteKeys},
	})
}

func confOwnKeys(t *testing.T, ctx context.Context, s *storage.Store) {
	rows, err := s.RecordOwnKey(ctx, "ed25519:a", "PUBA", 100)
	if err != nil || len(rows) != 1 || rows[0] != (storage.OwnKey{KeyID: "ed25519:a", PublicKey: "PUBA"}) {
		t.Fatalf("RecordOwnKey(a) = %+v, %v; want a current", rows, err)
	}
	if rows, err = s.RecordOwnKey(ctx, "ed25519:a", "PUBA", 200); err != nil || len(rows) != 1 || rows[0].ExpiredTS != 0 {
		t.Errorf("RecordOwnKey(a) again = %+v, %v; want a still current", rows, err)
	}
	rows, err = s.RecordOwnKey(ctx, "ed25519:b", "PUBB", 300)
	want := []storage.OwnKey{{KeyID: "ed25519:a", PublicKey: "PUBA", ExpiredTS: 300}, {KeyID: "ed25519:b", PublicKey: "PUBB"}}
	if err != nil || len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("RecordOwnKey(b) = %+v, %v; want %+v", rows, err, want)
	}
	// Going back to a: b retires, a is current again.
	rows, _ = s.RecordOwnKey(ctx, "ed25519:a", "PUBA", 400)
	if len(rows) != 2 || rows[0].ExpiredTS != 0 || rows[1].ExpiredTS != 400 {
		t.Errorf("RecordOwnKey(a) after b = %+v; want a current, b expired at 400", rows)
	}
}

func confRemoteKeys(t *testing.T, ctx context.Context, s *storage.Store) {
	if keys, err := s.RemoteKeys(ctx, "r.example"); err != nil || len(keys) != 0 {
		t.Errorf("RemoteKeys(unknown) = %v, %v; want none", keys, err)
	}
	if _, _, _, err := s.RemoteKeyResponse(ctx, "r.example"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RemoteKeyResponse(unknown) = %v, want ErrNotFound", err)
	}
	first := []storage.RemoteKey{
		{ServerName: "r.example", KeyID: "ed25519:1", PublicKey: "K1", ValidUntilTS: 1000, FetchedTS: 10},
		{ServerName: "r.example", KeyID: "ed25519:0", PublicKey: "K0", ValidUntilTS: 1000, ExpiredTS: 5, FetchedTS: 10},
	}
	if err := s.PutRemoteKeys(ctx, "r.example", first, `{"a":1}`, 1000, 10); err != nil {
		t.Fatal(err)
	}
	// A later response replaces key 1 and adds key 2; key 0 stays.
	second := []storage.RemoteKey{
		{ServerName: "r.example", KeyID: "ed25519:1", PublicKey: "K1", ValidUntilTS: 2000, ExpiredTS: 1500, FetchedTS: 20},
		{ServerName: "r.example", KeyID: "ed25519:2", PublicKey: "K2", ValidUntilTS: 2000, FetchedTS: 20},
	}
	if err := s.PutRemoteKeys(ctx, "r.example", second, `{"a":2}`, 2000, 20); err != nil {
		t.Fatal(err)
	}
	keys, err := s.RemoteKeys(ctx, "r.example")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.RemoteKey{}
	for _, k := range keys {
		got[k.KeyID] = k
	}
	for _, want := range []storage.RemoteKey{first[1], second[0], second[1]} {
		if got[want.KeyID] != want {
			t.Errorf("RemoteKeys[%s] = %+v, want %+v", want.KeyID, got[want.KeyID], want)
		}
	}
	if len(got) != 3 {
		t.Errorf("RemoteKeys = %d keys, want 3", len(got))
	}
	if resp, valid, fetched, err := s.RemoteKeyResponse(ctx, "r.example"); err != nil || resp != `{"a":2}` || valid != 2000 || fetched != 20 {
		t.Errorf("RemoteKeyResponse = %q, %d, %d, %v; want the second", resp, valid, fetched, err)
	}
}
