package desks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Limits on what an operator may configure.
const (
	maxCapacity      = 1000
	maxReplyTimeoutS = 86400
	maxCategories    = 32
	maxNameBytes     = 255
)

var (
	deskIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	categoryPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// DeskParams configures a desk. A nil field keeps the desk's current value,
// or takes the default when the desk is new: name = the desk's ID,
// categories = presale and aftersale, strategy = least_busy, capacity = 5,
// reply_timeout_s = 120.
type DeskParams struct {
	Name          *string   `json:"name"`
	Categories    []string  `json:"categories"`
	Strategy      *Strategy `json:"strategy"`
	Capacity      *int      `json:"capacity"`
	ReplyTimeoutS *int      `json:"reply_timeout_s"`
}

// apply sets p's fields on cfg and checks the result.
func (p DeskParams) apply(cfg *storage.Desk) error {
	if p.Name != nil {
		cfg.Name = strings.TrimSpace(*p.Name)
	}
	if p.Categories != nil {
		cfg.Categories = p.Categories
	}
	if p.Strategy != nil {
		cfg.Strategy = string(*p.Strategy)
	}
	if p.Capacity != nil {
		cfg.Capacity = *p.Capacity
	}
	if p.ReplyTimeoutS != nil {
		cfg.ReplyTimeoutS = *p.ReplyTimeoutS
	}
	switch {
	case cfg.Name == "" || len(cfg.Name) > maxNameBytes:
		return fmt.Errorf("%w: name must be 1 to %d bytes", ErrInvalid, maxNameBytes)
	case len(cfg.Categories) == 0 || len(cfg.Categories) > maxCategories:
		return fmt.Errorf("%w: categories must list 1 to %d names", ErrInvalid, maxCategories)
	case !Strategy(cfg.Strategy).valid():
		return fmt.Errorf("%w: strategy must be least_busy, round_robin or sticky", ErrInvalid)
	case cfg.Capacity < 1 || cfg.Capacity > maxCapacity:
		return fmt.Errorf("%w: capacity must be from 1 to %d", ErrInvalid, maxCapacity)
	case cfg.ReplyTimeoutS < 1 || cfg.ReplyTimeoutS > maxReplyTimeoutS:
		return fmt.Errorf("%w: reply_timeout_s must be from 1 to %d", ErrInvalid, maxReplyTimeoutS)
	}
	return checkNames("categories", cfg.Categories)
}

// checkNames refuses malformed or repeated category names.
func checkNames(field string, names []string) error {
	for i, n := range names {
		if !categoryPattern.MatchString(n) {
			return fmt.Errorf("%w: %s: %q is not a category name (a-z, 0-9, _ and -, at most 32)", ErrInvalid, field, n)
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("%w: %s: %q is listed twice", ErrInvalid, field, n)
		}
	}
	return nil
}

// PutDesk creates or updates a desk and returns its live state. A new desk
// gets a service account, @desk.<deskId>:<server>, which cannot log in.
func (s *Service) PutDesk(ctx context.Context, id string, p DeskParams) (DeskView, error) {
	if !deskIDPattern.MatchString(id) {
		return DeskView{}, fmt.Errorf("%w: a desk ID is 1 to 64 of a-z, 0-9, . _ and -, starting with a letter or digit", ErrInvalid)
	}
	ctx = context.WithoutCancel(ctx)
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if d, err := s.desk(id); err == nil {
		return s.updateDesk(ctx, d, p)
	}
	cfg := storage.Desk{DeskID: id, Name: id, Categories: []string{"presale", "aftersale"}, Strategy: string(LeastBusy),
		Capacity: 5, ReplyTimeoutS: 120, ServiceUser: "@" + serviceUserPrefix + id + ":" + s.cfg.ServerName, CreatedTS: ms(s.cfg.Now())}
	if err := p.apply(&cfg); err != nil {
		return DeskView{}, err
	}
	if err := s.ensureServiceUser(ctx, cfg.ServiceUser, cfg.Name); err != nil {
		return DeskView{}, err
	}
	if err := s.store.PutDesk(ctx, cfg); err != nil {
		return DeskView{}, err
	}
	d := newDesk(cfg)
	s.mu.Lock()
	s.desks[id] = d
	s.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	return s.liveLocked(ctx, d, s.cfg.Now()), nil
}

func (s *Service) updateDesk(ctx context.Context, d *desk, p DeskParams) (DeskView, error) {
	d.mu.Lock()
	cfg := d.cfg
	cfg.Categories = slices.Clone(cfg.Categories)
	if err := p.apply(&cfg); err != nil {
		d.mu.Unlock()
		return DeskView{}, err
	}
	if err := s.store.PutDesk(ctx, cfg); err != nil {
		d.mu.Unlock()
		return DeskView{}, err
	}
	renamed := cfg.Name != d.cfg.Name
	d.cfg = cfg
	now := s.cfg.Now()
	err := s.drainLocked(ctx, d, now) // capacity may have grown
	if renamed {
		for _, c := range d.open {
			d.markDirty(c) // the state event names the desk
		}
	}
	v := s.liveLocked(ctx, d, now)
	touched := d.takeDirty()
	d.mu.Unlock()
	if renamed {
		// As every profile change goes: the profile's rules, then the
		// service user's member event in each room it is in, which is
		// where customers read the desk's name.
		if err := s.profiles.SetField(ctx, cfg.ServiceUser, cfg.ServiceUser, profiles.FieldDisplayName, cfg.Name); err != nil {
			s.log.Warn("rename desk service user", "desk", d.id, "err", err)
		}
	}
	s.reconcileAll(ctx, touched)
	return v, err
}

// ensureServiceUser creates the desk's service account, without a password
// so nobody can log in as it. An existing account with a password is a
// person who registered the name first: the desk may not take it over. An
// existing service account (a desk made again on an old ID) takes the
// desk's name through the profiles service, as a rename does.
func (s *Service) ensureServiceUser(ctx context.Context, userID, name string) error {
	err := s.store.CreateUser(ctx, storage.User{UserID: userID, DisplayName: name, CreatedTS: ms(s.cfg.Now())})
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if u.PasswordHash != "" || u.Deactivated {
		return fmt.Errorf("%w: the desk's service user %s is already a person's account; choose another desk ID", ErrInvalid, userID)
	}
	if u.DisplayName != name {
		if err := s.profiles.SetField(ctx, userID, userID, profiles.FieldDisplayName, name); err != nil {
			s.log.Warn("rename desk service user", "user", userID, "err", err)
		}
	}
	return nil
}

// DeleteDesk closes every open consultation of a desk (telling its
// customer), then removes the desk, its agents and its consultations' rows.
// The rooms stay, with their history.
func (s *Service) DeleteDesk(ctx context.Context, id string) error {
	ctx = context.WithoutCancel(ctx)
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	d, err := s.desk(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	open := make([]*consultation, 0, len(d.open))
	for _, c := range d.open {
		open = append(open, c)
	}
	sortByOpened(open)
	now := s.cfg.Now()
	for _, c := range open {
		r := c.row()
		r.State, r.ClosedTS, r.ClosedBy = string(Closed), ms(now), d.cfg.ServiceUser
		if err = s.commitLocked(ctx, d, c, r, false); err != nil {
			break
		}
		s.say(c, notice{kind: "closed", from: d.cfg.ServiceUser})
	}
	if err == nil {
		err = s.store.DeleteDesk(ctx, id)
	}
	if err == nil {
		d.deleted = true
	}
	touched := d.takeDirty()
	d.mu.Unlock()
	if err == nil {
		s.mu.Lock()
		delete(s.desks, id)
		s.mu.Unlock()
	}
	s.reconcileAll(ctx, touched)
	return err
}

// AgentParams configures an agent. Nil Skills keeps the agent's skills (a
// new agent gets all of the desk's categories); nil Capacity keeps theirs
// (a new agent gets 0: the desk's default).
type AgentParams struct {
	Skills   []string `json:"skills"`
	Capacity *int     `json:"capacity"`
}

// PutAgent adds an agent to a desk or updates their skills and capacity.
// The agent must be an active local account. A new agent is available.
func (s *Service) PutAgent(ctx context.Context, deskID, userID string, p AgentParams) (AgentView, error) {
	d, err := s.desk(deskID)
	if err != nil {
		return AgentView{}, err
	}
	if err := s.checkAgentUser(ctx, userID); err != nil {
		return AgentView{}, err
	}
	if p.Capacity != nil && (*p.Capacity < 0 || *p.Capacity > maxCapacity) {
		return AgentView{}, fmt.Errorf("%w: capacity must be from 1 to %d, or 0 for the desk's default", ErrInvalid, maxCapacity)
	}
	if err := checkNames("skills", p.Skills); err != nil {
		return AgentView{}, err
	}
	ctx = context.WithoutCancel(ctx)
	if d, err = s.lockDesk(deskID); err != nil {
		return AgentView{}, err
	}
	for _, sk := range p.Skills {
		if !slices.Contains(d.cfg.Categories, sk) {
			d.mu.Unlock()
			return AgentView{}, fmt.Errorf("%w: skill %q is not a category of this desk", ErrInvalid, sk)
		}
	}
	a := storage.DeskAgent{DeskID: d.id, UserID: userID, Skills: slices.Clone(d.cfg.Categories), Status: string(StatusAvailable)}
	if i := d.agentIndex(userID); i >= 0 {
		a.Skills, a.Capacity, a.Status = d.cands[i].Skills, d.cands[i].Capacity, string(d.cands[i].Status)
	}
	if p.Skills != nil {
		a.Skills = slices.Clone(p.Skills)
	}
	if p.Capacity != nil {
		a.Capacity = *p.Capacity
	}
	if err := s.store.PutDeskAgent(ctx, a); err != nil {
		d.mu.Unlock()
		return AgentView{}, err
	}
	d.putAgentLocked(userID, a.Skills, a.Capacity, Status(a.Status), fromMs(a.LastAssignedTS))
	err = s.drainLocked(ctx, d, s.cfg.Now())
	v := s.agentViewLocked(ctx, d, d.agentIndex(userID))
	s.unlockAndReconcile(ctx, d)
	return v, err
}

// checkAgentUser accepts active local accounts that are not a desk's.
func (s *Service) checkAgentUser(ctx context.Context, userID string) error {
	if !pdu.ValidUserID(userID) || pdu.Domain(userID) != s.cfg.ServerName {
		return fmt.Errorf("%w: %q is not a user of this server", ErrInvalid, userID)
	}
	if s.isServiceUser(userID) {
		return fmt.Errorf("%w: %s is a desk's service user", ErrInvalid, userID)
	}
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return fmt.Errorf("%w: no active user %s", ErrNotFound, userID)
	}
	return err
}

// RemoveAgent takes an agent off a desk; their open consultations are
// re-routed as if they had gone away.
func (s *Service) RemoveAgent(ctx context.Context, deskID, userID string) error {
	ctx = context.WithoutCancel(ctx)
	d, err := s.lockDesk(deskID)
	if err != nil {
		return err
	}
	i := d.agentIndex(userID)
	if i < 0 {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s is not an agent of this desk", ErrNotFound, userID)
	}
	if err := s.store.DeleteDeskAgent(ctx, d.id, userID); err != nil {
		d.mu.Unlock()
		return err
	}
	d.cands = slices.Delete(d.cands, i, i+1)
	now := s.cfg.Now()
	err = s.rerouteLocked(ctx, d, userID, "removed", now)
	if err == nil {
		err = s.drainLocked(ctx, d, now)
	}
	s.unlockAndReconcile(ctx, d)
	return err
}

// Desk returns a desk's settings and live state: agents with status,
// presence, load and capacity; the queue in order with waiting times; and
// the desk's metrics.
func (s *Service) Desk(ctx context.Context, id string) (DeskView, error) {
	d, err := s.desk(id)
	if err != nil {
		return DeskView{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return s.liveLocked(ctx, d, s.cfg.Now()), nil
}

// Desks lists every desk's settings, by ID.
func (s *Service) Desks() []DeskView {
	ds := s.allDesks()
	out := make([]DeskView, 0, len(ds))
	for _, d := range ds {
		d.mu.Lock()
		out = append(out, d.configLocked())
		d.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b DeskView) int { return strings.Compare(a.DeskID, b.DeskID) })
	return out
}
