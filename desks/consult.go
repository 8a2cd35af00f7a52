package desks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// maxBodyBytes bounds a consultation's first message, well inside the
// 65536 bytes an event may have.
const maxBodyBytes = 32 << 10

// OpenRequest opens a consultation.
type OpenRequest struct {
	DeskID   string
	Customer string
	DeviceID string
	Category string
	Body     string
}

// Open starts a consultation: a room with the customer, the desk's service
// user and, when one is eligible, an agent; otherwise the customer is
// queued. Body becomes the customer's first message. A customer who already
// has an open consultation in the category gets that one back, unchanged,
// so a retried request never opens two.
func (s *Service) Open(ctx context.Context, req OpenRequest) (ConsultationView, error) {
	d, err := s.desk(req.DeskID)
	if err != nil {
		return ConsultationView{}, err
	}
	switch {
	case strings.TrimSpace(req.Body) == "":
		return ConsultationView{}, fmt.Errorf("%w: body must be a non-empty string", ErrInvalid)
	case len(req.Body) > maxBodyBytes:
		return ConsultationView{}, fmt.Errorf("%w: body is longer than %d bytes", ErrInvalid, maxBodyBytes)
	}
	key := req.Customer + "\x00" + req.Category
	d.mu.Lock()
	if d.deleted {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: no desk %q", ErrNotFound, d.id)
	}
	if !slices.Contains(d.cfg.Categories, req.Category) {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: category must be one of %s", ErrInvalid, strings.Join(d.cfg.Categories, ", "))
	}
	if c := d.openOf(req.Customer, req.Category); c != nil {
		v := d.viewLocked(c)
		d.mu.Unlock()
		return v, nil
	}
	if d.opening[key] {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: this consultation is being opened", ErrBusy)
	}
	d.opening[key] = true
	name, service := d.cfg.Name, d.cfg.ServiceUser
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.opening, key)
		d.mu.Unlock()
	}()

	// From here the work is the server's: a client that hangs up does not
	// leave a half-opened consultation behind.
	ctx = context.WithoutCancel(ctx)
	preferred, err := s.store.LastAgent(ctx, d.id, req.Customer)
	if err != nil {
		return ConsultationView{}, err
	}
	roomID, err := s.openRoom(ctx, service, name, req)
	if err != nil {
		return ConsultationView{}, err
	}
	now := s.cfg.Now()
	c := &consultation{id: newID(), roomID: roomID, customer: req.Customer, category: req.Category, opened: now, desk: d, preferred: preferred}

	d.mu.Lock()
	if d.deleted {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: no desk %q", ErrNotFound, d.id)
	}
	// Those already waiting go first, so a newcomer never overtakes them
	// (an agent may have come online since the last sweep).
	err = s.drainLocked(ctx, d, now)
	if err == nil {
		err = s.routeLocked(ctx, d, c, now)
	}
	if err == nil {
		d.stats.opened++
	}
	v := d.viewLocked(c)
	s.unlockAndReconcile(ctx, d)
	if err != nil {
		return ConsultationView{}, err
	}
	return v, nil
}

// openRoom creates the consultation's room as the desk's service user,
// with the customer in it and their first message posted. History is
// shared, so every agent assigned later reads the whole conversation.
// Only the service user may invite (power level 50) or change state.
func (s *Service) openRoom(ctx context.Context, service, deskName string, req OpenRequest) (string, error) {
	profile := s.profile(ctx, req.Customer)
	roomID, err := s.rooms.CreateRoom(ctx, rooms.CreateRequest{
		Creator: service, CreatorProfile: s.profile(ctx, service), Preset: "private_chat",
		Name: deskName, Topic: req.Category, Invite: []string{req.Customer},
		InviteProfiles:     map[string]rooms.Profile{req.Customer: profile},
		PowerLevelOverride: json.RawMessage(`{"invite":50}`),
		ByService:          true, // the customer asked for this room
	})
	if err != nil {
		return "", fmt.Errorf("create consultation room: %w", err)
	}
	if _, err := s.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: roomID, Sender: req.Customer, Target: req.Customer,
		Membership: "join", Profile: profile}); err != nil {
		return "", fmt.Errorf("join customer: %w", err)
	}
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": req.Body}) // strings always marshal
	if _, err := s.rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: req.Customer, DeviceID: req.DeviceID,
		Type: "m.room.message", Content: content}); err != nil {
		return "", fmt.Errorf("post first message: %w", err)
	}
	return roomID, nil
}

// Consultation returns one consultation to its customer, its agent (the
// last one, once closed) or an admin.
func (s *Service) Consultation(ctx context.Context, deskID, id string, who Actor) (ConsultationView, error) {
	d, err := s.desk(deskID)
	if err != nil {
		return ConsultationView{}, err
	}
	d.mu.Lock()
	if c := d.open[id]; c != nil {
		defer d.mu.Unlock()
		if !who.Admin && who.UserID != c.customer && who.UserID != c.agent {
			return ConsultationView{}, fmt.Errorf("%w: only the consultation's customer and agent may see it", ErrForbidden)
		}
		return d.viewLocked(c), nil
	}
	d.mu.Unlock()
	r, err := s.closedRow(ctx, d, id)
	if err != nil {
		return ConsultationView{}, err
	}
	if !who.Admin && who.UserID != r.Customer && who.UserID != r.Agent {
		return ConsultationView{}, fmt.Errorf("%w: only the consultation's customer and agent may see it", ErrForbidden)
	}
	return rowView(r), nil
}

// closedRow loads a consultation that is not open from the store.
func (s *Service) closedRow(ctx context.Context, d *desk, id string) (storage.Consultation, error) {
	r, err := s.store.GetConsultation(ctx, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && r.DeskID != d.id) {
		return storage.Consultation{}, fmt.Errorf("%w: no consultation %q on this desk", ErrNotFound, id)
	}
	return r, err
}

// closedListLimit bounds a list of closed consultations.
const closedListLimit = 100

// List returns the caller's consultations on a desk, as agent or customer:
// state "open" (the default), "queued" or "assigned" from the live model,
// or "closed" (the newest 100) from the store.
func (s *Service) List(ctx context.Context, deskID string, who Actor, state string) ([]ConsultationView, error) {
	d, err := s.desk(deskID)
	if err != nil {
		return nil, err
	}
	out := []ConsultationView{}
	switch state {
	case "", "open", string(Queued), string(Assigned):
	case string(Closed):
		rows, err := s.store.ClosedConsultations(ctx, d.id, who.UserID, closedListLimit)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out = append(out, rowView(r))
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: state must be open, queued, assigned or closed", ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var mine []*consultation
	for _, c := range d.open {
		if (c.agent == who.UserID || c.customer == who.UserID) && (state == "" || state == "open" || string(c.state) == state) {
			mine = append(mine, c)
		}
	}
	sortByOpened(mine)
	for _, c := range mine {
		out = append(out, d.viewLocked(c))
	}
	return out, nil
}
