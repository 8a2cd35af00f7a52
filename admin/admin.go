// Package admin holds the operator actions on users, registration tokens
// and rooms that the admin API (/_parley/admin/v1) and the parley command
// run, and the audit log that records each of them: who did what to whom,
// and when. The rules live here so both routes run the same code; the
// caller has already checked that the actor is a server admin.
//
// Every action that changes something writes one audit row after it
// succeeds. A refused action changes nothing and writes no row. If the
// audit write itself fails the action has happened but the caller gets
// the error, so the operator knows the log lacks it.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parley-im/parley/storage"
)

// The errors the service fails with, each wrapped with %w and a reason.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalidParam = errors.New("invalid parameter")
	ErrMissingParam = errors.New("missing parameter")
	// ErrUserInUse: create with a user ID that is taken.
	ErrUserInUse = errors.New("user in use")
	// ErrExists: a registration token that already exists.
	ErrExists = errors.New("already exists")
)

func fail(sentinel error, reason string) error { return fmt.Errorf("%w: %s", sentinel, reason) }

// Paging limits for every list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxPasswordBytes matches /register and /account/password.
	MaxPasswordBytes = 512
)

// Store is what the service needs of the database. *storage.Store
// implements it.
type Store interface {
	AddAudit(ctx context.Context, e storage.AuditEntry) (int64, error)
	AuditLog(ctx context.Context, before int64, target string, limit int) ([]storage.AuditEntry, error)

	ListUsers(ctx context.Context, term, after string, limit int) ([]storage.UserSummary, error)
	GetUser(ctx context.Context, userID string) (storage.User, error)
	CreateUser(ctx context.Context, u storage.User) error
	SetAdmin(ctx context.Context, userID string, admin bool) error
	SetPassword(ctx context.Context, userID, hash string) error
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)

	CreateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error
	RegistrationTokens(ctx context.Context) ([]storage.RegistrationToken, error)
	DeleteRegistrationToken(ctx context.Context, token string) error

	ListRooms(ctx context.Context, term, after string, limit int) ([]storage.RoomSummary, error)
	GetRoom(ctx context.Context, roomID string) (storage.Room, error)
	CurrentState(ctx context.Context, roomID string) ([]storage.Event, error)
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
}

// Devices lists and removes devices, telling other users' clients; forget
// drops cached access tokens. *devices.Service implements it.
type Devices interface {
	List(ctx context.Context, userID string) ([]storage.Device, error)
	Delete(ctx context.Context, userID string, ids []string, forget func(deviceID string)) error
	DeleteAll(ctx context.Context, userID string, forget func(deviceID string)) error
}

// Hasher hashes passwords. *password.Hasher implements it.
type Hasher interface {
	Hash(ctx context.Context, password string) (string, error)
}

// Blocker blocks rooms in the room writer. *rooms.Service implements it.
type Blocker interface {
	SetRoomBlocked(ctx context.Context, roomID string, blocked bool, by string) error
	RoomBlocked(roomID string) bool
}

// Config is what New needs.
type Config struct {
	ServerName string
	Store      Store
	Devices    Devices
	Hasher     Hasher
	Rooms      Blocker
	// Accounts, Deactivator and RoomOps serve deactivation, reactivation
	// and the room actions (deactivate.go, roomops.go); nil ones make
	// those actions fail with an error.
	Accounts    AccountStore
	Deactivator Deactivator
	RoomOps     RoomActions
	Purger      Purger
	// Media is the media store (media.go); nil turns media actions off.
	Media MediaRepo
	// Notices and NoticeRooms serve server notices (notices.go); nil
	// turns them off.
	Notices     NoticeStore
	NoticeRooms NoticeRooms
	// Forget drops a user's cached sessions: one device's, or all with ""
	// (the client API's token cache). Nil means there is no cache.
	Forget func(userID, deviceID string)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Service runs admin actions. Static after New.
type Service struct {
	cfg Config
}

// New builds a service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Forget == nil {
		cfg.Forget = func(string, string) {}
	}
	return &Service{cfg: cfg}
}

// Page is the paging of a list request: a limit and an opaque token from a
// previous answer's next_batch.
type Page struct {
	From  string
	Limit int
}

// ParsePage checks a limit and token as the query string gives them.
// An empty limit means DefaultLimit.
func ParsePage(from, limit string) (Page, error) {
	p := Page{From: from, Limit: DefaultLimit}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxLimit {
			return Page{}, fail(ErrInvalidParam, fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit))
		}
		p.Limit = n
	}
	if len(from) > 512 {
		return Page{}, fail(ErrInvalidParam, "from is too long")
	}
	return p, nil
}

// audit records one action.
func (s *Service) audit(ctx context.Context, actor, action, target string, detail map[string]any) error {
	var d string
	if len(detail) > 0 {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("audit detail: %w", err)
		}
		d = string(b)
	}
	_, err := s.cfg.Store.AddAudit(ctx, storage.AuditEntry{TS: s.cfg.Now().UnixMilli(), Actor: actor, Action: action, Target: target, Detail: d})
	return err
}

// AuditEntry is one audit row as the API shows it.
type AuditEntry struct {
	ID     int64           `json:"id"`
	TS     int64           `json:"ts"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Audit pages the audit log, newest first; target, if not "", keeps its
// rows only. next is "" on the last page.
func (s *Service) Audit(ctx context.Context, target string, p Page) (rows []AuditEntry, next string, err error) {
	var before int64
	if p.From != "" {
		before, err = strconv.ParseInt(p.From, 10, 64)
		if err != nil || before < 1 {
			return nil, "", fail(ErrInvalidParam, "from is not a token this list gave")
		}
	}
	got, err := s.cfg.Store.AuditLog(ctx, before, target, p.Limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(got) > p.Limit {
		got = got[:p.Limit]
		next = strconv.FormatInt(got[len(got)-1].ID, 10)
	}
	rows = make([]AuditEntry, len(got))
	for i, e := range got {
		rows[i] = AuditEntry{ID: e.ID, TS: e.TS, Actor: e.Actor, Action: e.Action, Target: e.Target}
		if e.Detail != "" {
			rows[i].Detail = json.RawMessage(e.Detail)
		}
	}
	return rows, next, nil
}
