package desks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Opening a consultation takes four writes that no one transaction can
// hold: the room (the room writer's commit), the customer's join, their
// question (two more commits), and the consultation's routing and record
// (desk_consultations). A crash between them once left customers in a room
// with their question and no consultation, so no agent ever came, and a
// retry opened a second room.
//
// So Open first records the open in desk_pending_consultations, with the
// room ID chosen in advance, the question and the customer's device. Then
// finishOpen does each step only if it is not done yet, which makes it safe
// to run again from any point: the room is created unless it exists, the
// customer joins unless joined, the question is sent under a transaction ID
// derived from the consultation's, so the room writer keeps it once. Last,
// the consultation is routed and recorded, and the pending row goes. At
// start, FinishPending runs finishOpen for every row left; a customer's
// retry does the same for theirs.

// SetOpenFault makes every open call f after each step that a crash could
// follow ("pending": the open is recorded; "question": the room is ready
// with the question in it; "recorded": the consultation is routed and
// recorded, the pending row not yet deleted). When f returns an error the
// open stops there and fails with it, as a kill -9 at that point would
// stop it. Fault drills and tests use it; nil clears it.
func (s *Service) SetOpenFault(f func(step string) error) {
	if f == nil {
		s.openFault.Store(nil)
		return
	}
	s.openFault.Store(&f)
}

func (s *Service) fault(step string) error {
	if f := s.openFault.Load(); f != nil {
		return (*f)(step)
	}
	return nil
}

// questionTxn is the transaction ID of a consultation's first message: a
// repeated finishOpen posts it once.
func questionTxn(consultationID string) string { return "desk.open." + consultationID }

// finishOpen completes a pending open from wherever it stopped and returns
// the consultation. The caller holds d.opening for the customer and
// category, so no other finishOpen runs for the same row.
func (s *Service) finishOpen(ctx context.Context, d *desk, p storage.PendingConsultation, deskName, service string) (ConsultationView, error) {
	if err := s.ensureRoom(ctx, p, deskName, service); err != nil {
		return ConsultationView{}, err
	}
	if err := s.fault("question"); err != nil {
		return ConsultationView{}, err
	}
	preferred, err := s.store.LastAgent(ctx, d.id, p.Customer)
	if err != nil {
		return ConsultationView{}, err
	}
	now := s.cfg.Now()
	c := &consultation{id: p.ID, roomID: p.RoomID, customer: p.Customer, category: p.Category, opened: fromMs(p.OpenedTS), desk: d, preferred: preferred}

	d.mu.Lock()
	if d.deleted {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: no desk %q", ErrNotFound, d.id)
	}
	if done := d.open[p.ID]; done != nil {
		// Recorded before a crash that came before the pending row went.
		v := d.viewLocked(done)
		d.mu.Unlock()
		s.dropPending(ctx, p.ID)
		return v, nil
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
	if err := s.fault("recorded"); err != nil {
		return ConsultationView{}, err
	}
	s.dropPending(ctx, p.ID)
	return v, nil
}

// recorded reports whether a pending open's consultation is already in
// desk_consultations (open or closed): the crash came after the record and
// before the pending row's delete. The stale row is deleted, and the open
// must not be finished again: its customer may have left the room since.
func (s *Service) recorded(ctx context.Context, p storage.PendingConsultation) bool {
	if _, err := s.store.GetConsultation(ctx, p.ID); err != nil {
		return false // not found, or unknown: finishing is idempotent either way
	}
	s.dropPending(ctx, p.ID)
	return true
}

// dropPending deletes a pending row whose consultation is recorded. A
// failure is only logged: the consultation is safe, and the next start
// finds it recorded and deletes the row then.
func (s *Service) dropPending(ctx context.Context, id string) {
	if err := s.store.DeletePendingConsultation(ctx, id); err != nil {
		s.log.Warn("desks: pending consultation not deleted", "consultation", id, "err", err)
	}
}

// ensureRoom brings a pending open's room to where the consultation needs
// it: created by the desk's service user, with the customer joined and
// their question posted once. History is shared, so every agent assigned
// later reads the whole conversation. Only the service user may invite
// (power level 50) or change state.
func (s *Service) ensureRoom(ctx context.Context, p storage.PendingConsultation, deskName, service string) error {
	profile := s.profile(ctx, p.Customer)
	switch _, err := s.store.GetRoom(ctx, p.RoomID); {
	case errors.Is(err, storage.ErrNotFound):
		if _, err := s.rooms.CreateRoom(ctx, rooms.CreateRequest{
			RoomID: p.RoomID,
			// The ID is chosen before the room exists, so that a crash
			// cannot leave a second room: version 12 derives IDs from the
			// create event, so consultation rooms stay on version 11.
			RoomVersion: "11",
			Creator:     service, CreatorProfile: s.profile(ctx, service), Preset: "private_chat",
			Name: deskName, Topic: p.Category, Invite: []string{p.Customer},
			InviteProfiles:     map[string]rooms.Profile{p.Customer: profile},
			PowerLevelOverride: json.RawMessage(`{"invite":50}`),
			ByService:          true, // the customer asked for this room
		}); err != nil {
			return fmt.Errorf("create consultation room: %w", err)
		}
	case err != nil:
		return fmt.Errorf("consultation room: %w", err)
	}
	joined, err := s.joined(ctx, p.RoomID, p.Customer)
	if err != nil {
		return err
	}
	if !joined {
		if _, err := s.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: p.RoomID, Sender: p.Customer, Target: p.Customer,
			Membership: "join", Profile: profile, ByService: true}); err != nil { // replayed work: limited at the request, not on retry
			return fmt.Errorf("join customer: %w", err)
		}
	}
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": p.Body}) // strings always marshal
	if _, err := s.rooms.Send(ctx, rooms.SendRequest{RoomID: p.RoomID, Sender: p.Customer, DeviceID: p.DeviceID,
		TxnID: questionTxn(p.ID), Type: "m.room.message", Content: content, ByService: true}); err != nil {
		return fmt.Errorf("post first message: %w", err)
	}
	return nil
}

// joined reports whether userID's membership of roomID is join.
func (s *Service) joined(ctx context.Context, roomID, userID string) (bool, error) {
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return false, fmt.Errorf("consultation room members: %w", err)
	}
	for _, m := range ms {
		if m.UserID == userID {
			return m.Membership == "join", nil
		}
	}
	return false, nil
}

// FinishPending finishes every open a crash interrupted (see above). Run
// calls it once at start; a row whose desk or category is gone is dropped,
// its room left as the room log keeps it. It returns how many consultations
// it finished, for tests and logs.
func (s *Service) FinishPending(ctx context.Context) (int, error) {
	pending, err := s.store.PendingConsultations(ctx)
	if err != nil {
		return 0, err
	}
	finished := 0
	var errs []error
	for _, p := range pending {
		ok, err := s.finishOne(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("consultation %s: %w", p.ID, err))
		}
		if ok {
			finished++
		}
	}
	return finished, errors.Join(errs...)
}

func (s *Service) finishOne(ctx context.Context, p storage.PendingConsultation) (bool, error) {
	d, err := s.desk(p.DeskID)
	if err != nil {
		// Deleting a desk deletes its pending rows; this one raced it.
		return false, s.store.DeletePendingConsultation(ctx, p.ID)
	}
	if s.recorded(ctx, p) {
		return false, nil
	}
	key := p.Customer + "\x00" + p.Category
	d.mu.Lock()
	if d.deleted || !slices.Contains(d.cfg.Categories, p.Category) {
		d.mu.Unlock()
		s.log.Warn("desks: dropping a pending consultation whose desk or category is gone", "consultation", p.ID, "desk", p.DeskID)
		return false, s.store.DeletePendingConsultation(ctx, p.ID)
	}
	if d.opening[key] {
		d.mu.Unlock()
		return false, nil // the customer's retry is finishing it
	}
	name, service := d.cfg.Name, d.cfg.ServiceUser
	defer d.markOpeningLocked(key)()
	if _, err := s.finishOpen(ctx, d, p, name, service); err != nil {
		return false, err
	}
	return true, nil
}

// markOpeningLocked records that key's consultation is being opened and
// unlocks d; the returned func, deferred by the opener, clears the mark.
// A second open of the same key sees the mark and does not start another.
func (d *desk) markOpeningLocked(key string) (release func()) {
	d.opening[key] = true
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		delete(d.opening, key)
		d.mu.Unlock()
	}
}
