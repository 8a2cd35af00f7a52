package desks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	name, service := d.cfg.Name, d.cfg.ServiceUser
	defer d.markOpeningLocked(key)()

	// From here the work is the server's: a client that hangs up does not
	// leave a half-opened consultation behind.
	ctx = context.WithoutCancel(ctx)
	// The open is recorded before its room exists (pending.go): a crash at
	// any later step leaves a row that the next start finishes, and a
	// retry finishes the same one instead of opening a second room.
	p, err := s.store.PendingConsultationOf(ctx, d.id, req.Customer, req.Category)
	if err == nil && s.recorded(ctx, p) {
		err = storage.ErrNotFound // a stale row of a consultation since closed
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		p = storage.PendingConsultation{ID: newID(), DeskID: d.id, RoomID: s.rooms.NewRoomID(), Customer: req.Customer,
			Category: req.Category, DeviceID: req.DeviceID, Body: req.Body, OpenedTS: ms(s.cfg.Now())}
		if err := s.store.InsertPendingConsultation(ctx, p); err != nil {
			return ConsultationView{}, err
		}
		if err := s.fault("pending"); err != nil {
			return ConsultationView{}, err
		}
	case err != nil:
		return ConsultationView{}, err
	}
	return s.finishOpen(ctx, d, p, name, service)
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
