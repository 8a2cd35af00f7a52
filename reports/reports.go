// Package reports keeps users' reports of rooms and events for the
// server's operators. It owns the rules of reporting (one may report only
// what one may read, reasons are bounded, scores are in range) so the
// client API and any later route share them; the operator API (issue 16)
// lists the reports through List.
package reports

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Errors, wrapped with a reason ("sentinel: reason").
var (
	// ErrNotFound: the room or event is unknown, or the reporter may not
	// read it; the two answer alike so reports cannot probe for events.
	ErrNotFound = errors.New("not found")
	// ErrInvalidParam: a reason or score out of bounds.
	ErrInvalidParam = errors.New("invalid param")
)

// MaxReasonBytes bounds a report's reason: it is stored as given, and an
// operator reads it; a longer text is refused, not cut.
const MaxReasonBytes = 4096

// MaxPerDay bounds the reports one user files in 24 hours. Reports are
// rows an operator must read: a script filing them at the request rate
// would bury the real ones and fill the table. Concurrent reports may
// pass the count together, so the cap can be overshot by a few.
const MaxPerDay = 100

// Store is what the service keeps reports in; *storage.Store implements it.
type Store interface {
	GetEvent(ctx context.Context, eventID string) (storage.Event, error)
	AddReport(ctx context.Context, r storage.Report) error
	Reports(ctx context.Context, beforeTS int64, beforeID string, limit int) ([]storage.Report, error)
	ReportsSince(ctx context.Context, reporter string, sinceTS int64) (int, error)
}

// Access decides what a user may read in a room; *rooms.Service
// implements it, so reports follow the same read rules as every read.
type Access interface {
	ReadAccess(ctx context.Context, roomID, userID string) (*rooms.Access, error)
}

// Service files and lists reports. Static after New.
type Service struct {
	store Store
	rooms Access
	now   func() time.Time
}

// New builds the service.
func New(store Store, rooms Access) *Service {
	return &Service{store: store, rooms: rooms, now: time.Now}
}

// Report is what a user reports: an event when EventID is set, else the room.
type Report struct {
	RoomID  string
	EventID string
	Reason  string
	Score   *int64 // optional; -100 (most offensive) to 0
}

// File stores reporter's report. The reporter must be able to read the
// room (rooms.ReadAccess: an invitee may report the room that invited
// them), and for an event, to see that event.
func (s *Service) File(ctx context.Context, reporter string, r Report) (string, error) {
	if len(r.Reason) > MaxReasonBytes {
		return "", fmt.Errorf("%w: reason is longer than %d bytes", ErrInvalidParam, MaxReasonBytes)
	}
	if r.Score != nil && (*r.Score < -100 || *r.Score > 0) {
		return "", fmt.Errorf("%w: score must be between -100 and 0", ErrInvalidParam)
	}
	v, err := s.rooms.ReadAccess(ctx, r.RoomID, reporter)
	if errors.Is(err, rooms.ErrForbidden) {
		if r.EventID != "" {
			return "", fmt.Errorf("%w: event not found", ErrNotFound)
		}
		return "", fmt.Errorf("%w: room not found", ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	var sender string
	if r.EventID != "" {
		ev, err := s.store.GetEvent(ctx, r.EventID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomID != r.RoomID || !v.CanSee(&ev))) {
			return "", fmt.Errorf("%w: event not found", ErrNotFound)
		}
		if err != nil {
			return "", err
		}
		sender = ev.Sender
	}
	now := s.now()
	n, err := s.store.ReportsSince(ctx, reporter, now.Add(-24*time.Hour).UnixMilli())
	if err != nil {
		return "", err
	}
	if n >= MaxPerDay {
		return "", &rooms.RateLimitError{Action: "report", RetryAfter: time.Hour}
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("report id: %w", err)
	}
	rep := storage.Report{ID: hex.EncodeToString(id[:]), RoomID: r.RoomID, EventID: r.EventID, EventSender: sender,
		Reporter: reporter, Reason: r.Reason, Score: r.Score, TS: now.UnixMilli()}
	if err := s.store.AddReport(ctx, rep); err != nil {
		return "", err
	}
	return rep.ID, nil
}

// List returns up to limit reports, newest first, before the cursor (see
// storage.Store.Reports); for the operator API.
func (s *Service) List(ctx context.Context, beforeTS int64, beforeID string, limit int) ([]storage.Report, error) {
	return s.store.Reports(ctx, beforeTS, beforeID, limit)
}
