package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PendingConsultation is a consultation being opened: written before its
// room, so a crash between the room writes leaves a record to finish.
type PendingConsultation struct {
	ID, DeskID, RoomID, Customer, Category string
	DeviceID                               string // the customer's device, the question's transaction scope
	Body                                   string // the customer's question, posted as their first message
	OpenedTS                               int64
}

const pendingCols = `consultation_id, desk_id, room_id, customer, category, device_id, body, opened_ts`

func scanPending(row interface{ Scan(...any) error }) (PendingConsultation, error) {
	var p PendingConsultation
	err := row.Scan(&p.ID, &p.DeskID, &p.RoomID, &p.Customer, &p.Category, &p.DeviceID, &p.Body, &p.OpenedTS)
	return p, err
}

// InsertPendingConsultation records an open before any of its room writes.
// It returns ErrConflict when the customer already has one pending in the
// category.
func (s *Store) InsertPendingConsultation(ctx context.Context, p PendingConsultation) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO desk_pending_consultations (`+pendingCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		p.ID, p.DeskID, p.RoomID, p.Customer, p.Category, p.DeviceID, p.Body, p.OpenedTS)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("insert pending consultation %s: %w", p.ID, err)
	}
	return nil
}

// PendingConsultationOf returns the customer's pending open in a category,
// or ErrNotFound.
func (s *Store) PendingConsultationOf(ctx context.Context, deskID, customer, category string) (PendingConsultation, error) {
	p, err := scanPending(s.read.QueryRowContext(ctx, `SELECT `+pendingCols+` FROM desk_pending_consultations
		WHERE desk_id = $1 AND customer = $2 AND category = $3`, deskID, customer, category))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("pending consultation: %w", err)
	}
	return p, nil
}

// PendingConsultations lists every pending open, oldest first.
func (s *Store) PendingConsultations(ctx context.Context) ([]PendingConsultation, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+pendingCols+` FROM desk_pending_consultations ORDER BY opened_ts, consultation_id`)
	if err != nil {
		return nil, fmt.Errorf("pending consultations: %w", err)
	}
	defer rows.Close()
	var out []PendingConsultation
	for rows.Next() {
		p, err := scanPending(rows)
		if err != nil {
			return nil, fmt.Errorf("pending consultations: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePendingConsultation forgets a pending open: it has been recorded
// in desk_consultations, or dropped.
func (s *Store) DeletePendingConsultation(ctx context.Context, id string) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM desk_pending_consultations WHERE consultation_id = $1`, id); err != nil {
		return fmt.Errorf("delete pending consultation %s: %w", id, err)
	}
	return nil
}
