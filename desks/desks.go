package desks

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/rooms"
)

// Sentinel errors; wrapped errors add a human-readable reason after ": ".
var (
	ErrNotFound  = errors.New("desks: not found")
	ErrForbidden = errors.New("desks: forbidden")
	ErrInvalid   = errors.New("desks: invalid")
	// ErrBusy means the same request is already in progress: retry shortly.
	ErrBusy = errors.New("desks: busy")
)

// Config holds what the desks service needs.
type Config struct {
	ServerName string
	Store      Store
	Rooms      *rooms.Service
	Presence   *inbox.Presence
	Logger     *slog.Logger
	// Profiles renames a desk's service user when the desk is renamed
	// (profiles.Service). Required: a rename must take the same path as
	// any profile change, so that the member events follow.
	Profiles Profiles
	// Now returns the current time. Zero value means time.Now.
	Now func() time.Time
	// SweepEvery is how often Run re-checks presence, reply timeouts and the
	// queue. Zero value means 2 seconds: an offline agent's customers wait
	// at most that long to be re-routed, at the cost of a presence lookup
	// per agent (in memory) and one query per sweep when replies are due.
	SweepEvery time.Duration
}

// Service runs every desk of the server.
type Service struct {
	// Static after New.
	cfg   Config
	store Store
	rooms *rooms.Service
	pres  *inbox.Presence
	log   *slog.Logger
	// profiles is Config.Profiles.
	profiles Profiles

	adminMu sync.Mutex // serialises creating and deleting desks

	openFault atomic.Pointer[func(step string) error] // see SetOpenFault

	mu    sync.Mutex
	desks map[string]*desk // guarded by mu
}

// New loads every desk, agent and open consultation from the store.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 2 * time.Second
	}
	if cfg.Profiles == nil {
		return nil, errors.New("desks: Config.Profiles is required")
	}
	s := &Service{cfg: cfg, store: cfg.Store, rooms: cfg.Rooms, pres: cfg.Presence, profiles: cfg.Profiles, log: cfg.Logger, desks: map[string]*desk{}}
	if err := s.load(ctx); err != nil {
		return nil, fmt.Errorf("load desks: %w", err)
	}
	return s, nil
}

func (s *Service) load(ctx context.Context) error {
	rows, err := s.store.Desks(ctx)
	if err != nil {
		return err
	}
	totals, err := s.store.AllDeskTotals(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		d := newDesk(r)
		if t := totals[r.DeskID]; t != nil {
			replies, err := s.store.RecentReplyTimes(ctx, r.DeskID, sampleSize)
			if err != nil {
				return err
			}
			d.stats.load(*t, replies)
			d.nextSeq, d.frontSeq = t.MaxSeq+1, t.MinSeq-1
		}
		s.desks[r.DeskID] = d
	}
	agents, err := s.store.DeskAgents(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if d := s.desks[a.DeskID]; d != nil {
			d.putAgentLocked(a.UserID, a.Skills, a.Capacity, Status(a.Status), time.UnixMilli(a.LastAssignedTS))
		}
	}
	open, err := s.store.OpenConsultations(ctx)
	if err != nil {
		return err
	}
	for _, row := range open {
		if d := s.desks[row.DeskID]; d != nil {
			d.restoreLocked(row)
		}
	}
	return nil
}

// desk returns a desk by ID, or ErrNotFound.
func (s *Service) desk(id string) (*desk, error) {
	s.mu.Lock()
	d := s.desks[id]
	s.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: no desk %q", ErrNotFound, id)
	}
	return d, nil
}

// lockDesk returns a live desk with its lock held, or ErrNotFound. Every
// change goes through it, so nothing is written for a desk being deleted.
func (s *Service) lockDesk(id string) (*desk, error) {
	d, err := s.desk(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.deleted {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: no desk %q", ErrNotFound, id)
	}
	return d, nil
}

// allDesks returns the desks in no particular order.
func (s *Service) allDesks() []*desk {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*desk, 0, len(s.desks))
	for _, d := range s.desks {
		out = append(out, d)
	}
	return out
}

// isServiceUser reports whether userID is a live desk's service account.
func (s *Service) isServiceUser(userID string) bool {
	local, ok := strings.CutPrefix(userID, "@"+serviceUserPrefix)
	if !ok {
		return false
	}
	local, ok = strings.CutSuffix(local, ":"+s.cfg.ServerName)
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok && s.desks[local] != nil
}

// online reports whether a user's presence is online.
func (s *Service) online(ctx context.Context, userID string) bool {
	return s.presence(ctx, userID) == "online"
}

func (s *Service) presence(ctx context.Context, userID string) string {
	if s.pres == nil {
		return "online"
	}
	state, _, _, _ := s.pres.Get(ctx, userID)
	return state
}

// Actor is who makes a request.
type Actor struct {
	UserID string
	Admin  bool
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random ID of 16 lower-case letters and digits: safe in a
// URL path and as a transaction ID.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return idEncoding.EncodeToString(b[:])
}

// displayName is a user's display name, or their ID when they have none.
func (s *Service) displayName(ctx context.Context, userID string) string {
	if u, err := s.store.GetUser(ctx, userID); err == nil && u.DisplayName != "" {
		return u.DisplayName
	}
	return userID
}

func (s *Service) profile(ctx context.Context, userID string) rooms.Profile {
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return rooms.Profile{}
	}
	return rooms.Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
}
