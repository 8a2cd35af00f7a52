package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// End-to-end encryption key storage. Parley stores what clients upload and
// serves it back; it never looks inside the keys.

// PutDeviceKeys stores a device's identity keys.
func (s *Store) PutDeviceKeys(ctx context.Context, userID, deviceID, keyJSON string) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1,$2,$3)
		ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, userID, deviceID, keyJSON)
	if err != nil {
		return fmt.Errorf("put device keys: %w", err)
	}
	return nil
}

// DeviceKeys returns device keys for the users asked, keyed user -> device -> JSON.
func (s *Store) DeviceKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error) {
	return s.keysByUser(ctx, `SELECT user_id, device_id, key_json FROM e2e_device_keys`, userIDs)
}

// keysByUser runs a three-column key query (user, sub-key, JSON) for the
// given users and nests the rows by user.
func (s *Store) keysByUser(ctx context.Context, query string, userIDs []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(userIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(userIDs))
	for i, u := range userIDs {
		args[i] = u
	}
	rows, err := s.read.QueryContext(ctx, query+` WHERE user_id IN (`+placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, sub, k string
		if err := rows.Scan(&u, &sub, &k); err != nil {
			return nil, err
		}
		if out[u] == nil {
			out[u] = map[string]string{}
		}
		out[u][sub] = k
	}
	return out, rows.Err()
}

// PutOneTimeKey stores a one-time or fallback key.
func (s *Store) PutOneTimeKey(ctx context.Context, userID, deviceID, keyID, algorithm, keyJSON string, fallback bool) error {
	defer s.otk.drop(userID, deviceID)
	if fallback {
		if _, err := s.write.ExecContext(ctx, `DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND fallback = 1`, userID, deviceID, algorithm); err != nil {
			return fmt.Errorf("replace fallback key: %w", err)
		}
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO e2e_one_time_keys (user_id, device_id, key_id, algorithm, key_json, fallback) VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (user_id, device_id, key_id) DO NOTHING`, userID, deviceID, keyID, algorithm, keyJSON, boolInt(fallback))
	if err != nil {
		return fmt.Errorf("put one-time key: %w", err)
	}
	return nil
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys per algorithm,
// and lists the algorithms with a fallback key. The answer comes from a
// cache when the device's keys did not change since it was read (see
// otkCache); callers must not modify the map or slice.
func (s *Store) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error) {
	r, gen, ok := s.otk.get(userID, deviceID)
	if ok {
		return r.counts, r.fallbacks, nil
	}
	counts, fallbacks, err := s.oneTimeKeyCounts(ctx, userID, deviceID)
	if err == nil {
		s.otk.put(userID, deviceID, gen, otkCountsRow{counts, fallbacks})
	}
	return counts, fallbacks, err
}

func (s *Store) oneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT algorithm, fallback, COUNT(*) FROM e2e_one_time_keys
		WHERE user_id = $1 AND device_id = $2 AND used = 0 GROUP BY algorithm, fallback`, userID, deviceID)
	if err != nil {
		return nil, nil, fmt.Errorf("one-time key counts: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	var fallbacks []string
	for rows.Next() {
		var alg string
		var fb, n int
		if err := rows.Scan(&alg, &fb, &n); err != nil {
			return nil, nil, err
		}
		if fb == 1 {
			fallbacks = append(fallbacks, alg)
		} else {
			counts[alg] = n
		}
	}
	return counts, fallbacks, rows.Err()
}

// ClaimOneTimeKey takes one key of algorithm for a device: a one-time key is
// removed; a fallback key is served when none is left, and kept.
func (s *Store) ClaimOneTimeKey(ctx context.Context, userID, deviceID, algorithm string) (keyID, keyJSON string, err error) {
	defer s.otk.drop(userID, deviceID)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		e := tx.QueryRowContext(ctx, `SELECT key_id, key_json FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
			ORDER BY fallback, key_id LIMIT 1`, userID, deviceID, algorithm).Scan(&keyID, &keyJSON)
		if errors.Is(e, sql.ErrNoRows) {
			return ErrNotFound
		}
		if e != nil {
			return e
		}
		if _, e = tx.ExecContext(ctx, `DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = $3 AND fallback = 0`, userID, deviceID, keyID); e != nil {
			return e
		}
		// A fallback key stays, marked used so the device replaces it.
		_, e = tx.ExecContext(ctx, `UPDATE e2e_one_time_keys SET used = 1 WHERE user_id = $1 AND device_id = $2 AND key_id = $3 AND fallback = 1`, userID, deviceID, keyID)
		return e
	})
	return keyID, keyJSON, err
}

// PutCrossSigningKey stores a master, self_signing or user_signing key.
func (s *Store) PutCrossSigningKey(ctx context.Context, userID, keyType, keyJSON string) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO e2e_cross_signing (user_id, key_type, key_json) VALUES ($1,$2,$3)
		ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json`, userID, keyType, keyJSON)
	if err != nil {
		return fmt.Errorf("put cross-signing key: %w", err)
	}
	return nil
}

// CrossSigningKeys returns the cross-signing keys of the users asked: user -> type -> JSON.
func (s *Store) CrossSigningKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error) {
	return s.keysByUser(ctx, `SELECT user_id, key_type, key_json FROM e2e_cross_signing`, userIDs)
}
