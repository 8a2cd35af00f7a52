package storage

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// newEpoch returns a fresh random epoch: 12 hex digits (48 bits), short
// because every sync token carries it, and enough that two epochs of one
// server never meet.
func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Epoch returns the store's epoch (schema 036), writing a fresh one first
// if the store has none yet: a new store, or one created before schema 036.
func (s *Store) Epoch(ctx context.Context) (string, error) {
	var e string
	err := s.write.QueryRowContext(ctx, `SELECT epoch FROM store_epoch WHERE id = 1`).Scan(&e)
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store epoch: %w", err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO store_epoch (id, epoch) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, newEpoch()); err != nil {
		return "", fmt.Errorf("store epoch: %w", err)
	}
	if err := s.write.QueryRowContext(ctx, `SELECT epoch FROM store_epoch WHERE id = 1`).Scan(&e); err != nil {
		return "", fmt.Errorf("store epoch: %w", err)
	}
	return e, nil
}

// RenewEpoch gives the store a new epoch and returns it. Restore calls it:
// the restored store's positions may be behind what clients have seen, so
// their tokens must not be read against it.
func (s *Store) RenewEpoch(ctx context.Context) (string, error) {
	e := newEpoch()
	if _, err := s.write.ExecContext(ctx, `INSERT INTO store_epoch (id, epoch) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch`, e); err != nil {
		return "", fmt.Errorf("renew store epoch: %w", err)
	}
	return e, nil
}
