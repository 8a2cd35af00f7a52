package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Federation signing keys (migration 022): this server's own keys, current
// and retired, and a cache of other servers' keys. Package federation/keys
// decides what is valid; storage only keeps rows.

// OwnKey is one of this server's signing keys. ExpiredTS is 0 for the
// current key.
type OwnKey struct {
	KeyID     string
	PublicKey string // unpadded base64
	ExpiredTS int64  // ms; 0 = current
}

// RecordOwnKey makes keyID the current key: any other current key is retired
// at nowMs, and a key seen before is made current again. It returns every key
// row after the change, so the caller needs no second read.
func (s *Store) RecordOwnKey(ctx context.Context, keyID, publicKey string, nowMs int64) ([]OwnKey, error) {
	var out []OwnKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE federation_own_keys SET expired_ts = $1 WHERE expired_ts IS NULL AND key_id <> $2`, nowMs, keyID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO federation_own_keys (key_id, public_key, expired_ts) VALUES ($1,$2,NULL)
			ON CONFLICT (key_id) DO UPDATE SET public_key = excluded.public_key, expired_ts = NULL`, keyID, publicKey); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT key_id, public_key, COALESCE(expired_ts, 0) FROM federation_own_keys ORDER BY key_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k OwnKey
			if err := rows.Scan(&k.KeyID, &k.PublicKey, &k.ExpiredTS); err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("record own key: %w", err)
	}
	return out, nil
}

// RemoteKey is a cached verify key of another server.
type RemoteKey struct {
	ServerName   string
	KeyID        string
	PublicKey    string // unpadded base64
	ValidUntilTS int64  // ms, as published
	ExpiredTS    int64  // ms; 0 unless it came in old_verify_keys
	FetchedTS    int64  // ms
}

// PutRemoteKeys stores the keys of one verified key response, and the
// response itself (raw JSON) for notary answers. A key listed again replaces
// its row; keys not listed stay, since an old signature may still need them.
func (s *Store) PutRemoteKeys(ctx context.Context, serverName string, keys []RemoteKey, response string, validUntilTS, fetchedTS int64) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			var expired any
			if k.ExpiredTS != 0 {
				expired = k.ExpiredTS
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO federation_remote_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts)
				VALUES ($1,$2,$3,$4,$5,$6)
				ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
					valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts`,
				serverName, k.KeyID, k.PublicKey, k.ValidUntilTS, expired, k.FetchedTS); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_key_responses (server_name, response, valid_until_ts, fetched_ts) VALUES ($1,$2,$3,$4)
			ON CONFLICT (server_name) DO UPDATE SET response = excluded.response, valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts`,
			serverName, response, validUntilTS, fetchedTS)
		return err
	})
	if err != nil {
		return fmt.Errorf("put remote keys of %s: %w", serverName, err)
	}
	return nil
}

// RemoteKeys returns every cached key of serverName (none: an empty slice).
func (s *Store) RemoteKeys(ctx context.Context, serverName string) ([]RemoteKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT key_id, public_key, valid_until_ts, COALESCE(expired_ts, 0), fetched_ts
		FROM federation_remote_keys WHERE server_name = $1`, serverName)
	if err != nil {
		return nil, fmt.Errorf("remote keys of %s: %w", serverName, err)
	}
	defer rows.Close()
	var out []RemoteKey
	for rows.Next() {
		k := RemoteKey{ServerName: serverName}
		if err := rows.Scan(&k.KeyID, &k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS, &k.FetchedTS); err != nil {
			return nil, fmt.Errorf("remote keys of %s: %w", serverName, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RemoteKeyResponse returns the last key response stored for serverName, or
// ErrNotFound.
func (s *Store) RemoteKeyResponse(ctx context.Context, serverName string) (response string, validUntilTS, fetchedTS int64, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT response, valid_until_ts, fetched_ts FROM federation_key_responses WHERE server_name = $1`,
		serverName).Scan(&response, &validUntilTS, &fetchedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, 0, ErrNotFound
	}
	if err != nil {
		return "", 0, 0, fmt.Errorf("key response of %s: %w", serverName, err)
	}
	return response, validUntilTS, fetchedTS, nil
}
