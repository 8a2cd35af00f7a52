package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// AccountStore is what deactivation and reactivation need of the store
// beyond Store. *storage.Store implements it.
type AccountStore interface {
	SetDeactivated(ctx context.Context, userID string) error
	Reactivate(ctx context.Context, userID, passwordHash string) error
	SenderMessages(ctx context.Context, sender string, afterPos int64, limit int) ([]storage.EventRef, error)
}

// Deactivator ends an account: leaves, device logout, profile erasure.
// *accounts.Deactivator implements it, so the admin route and the
// client's own /account/deactivate run the same steps.
type Deactivator interface {
	Deactivate(ctx context.Context, userID string, erase bool, forget func(deviceID string)) error
}

// RoomActions are the room changes operator actions make, through the
// room writer so that every rule runs. *rooms.Service implements it.
type RoomActions interface {
	Redact(ctx context.Context, req rooms.RedactRequest) (string, error)
	ChangeMembership(ctx context.Context, req rooms.MembershipRequest) (string, error)
	Send(ctx context.Context, req rooms.SendRequest) (string, error)
	EraseEvents(ctx context.Context, roomID, sender string, eventIDs []string) (int, error)
}

// eraseBatch is how many of a user's messages one query fetches for
// redaction.
const eraseBatch = 500

// DeactivateResult says what a deactivation did.
type DeactivateResult struct {
	// Redacted counts the messages redacted (erase only).
	Redacted int `json:"redacted"`
}

// Deactivate ends userID's account for good. The account is marked first
// and its cached sessions dropped, so nothing the user does races the
// rest. With erase, every message the user sent is redacted: in rooms they
// are still joined to by a redaction event sent as the user, before they
// leave (only members may redact); in rooms they had already left by
// rewriting the stored copies to their redacted form (rooms.EraseEvents),
// since no redaction event can be sent there in their name. Then
// accounts.Deactivator leaves every room, logs out every device (so
// others' device lists lose them) and, with erase, blanks the profile.
// Running it again finishes a deactivation that failed half way.
func (s *Service) Deactivate(ctx context.Context, actor, userID string, erase bool) (DeactivateResult, error) {
	var res DeactivateResult
	if s.cfg.Deactivator == nil || s.cfg.Accounts == nil {
		return res, errors.New("deactivation is not configured")
	}
	if _, err := s.getUser(ctx, userID); err != nil {
		return res, err
	}
	if err := s.cfg.Accounts.SetDeactivated(ctx, userID); err != nil {
		return res, fmt.Errorf("deactivate %s: %w", userID, err)
	}
	s.cfg.Forget(userID, "")
	if erase {
		n, err := s.eraseMessages(ctx, userID)
		res.Redacted = n
		if err != nil {
			return res, err
		}
	}
	forget := func(id string) { s.cfg.Forget(userID, id) }
	if err := s.cfg.Deactivator.Deactivate(ctx, userID, erase, forget); err != nil {
		return res, err
	}
	s.cfg.Forget(userID, "")
	return res, s.audit(ctx, actor, "user.deactivate", userID, map[string]any{"erase": erase, "redacted": res.Redacted})
}

// eraseMessages redacts userID's messages: by redaction events in the
// rooms they are joined to, by erasing the stored copies in the others.
func (s *Service) eraseMessages(ctx context.Context, userID string) (int, error) {
	ms, err := s.cfg.Store.UserMemberships(ctx, userID, "join")
	if err != nil {
		return 0, err
	}
	joined := make(map[string]bool, len(ms))
	for _, m := range ms {
		joined[m.RoomID] = true
	}
	n := 0
	var after int64
	for {
		evs, err := s.cfg.Accounts.SenderMessages(ctx, userID, after, eraseBatch)
		if err != nil {
			return n, err
		}
		left := map[string][]string{} // room -> events, in rooms the user is not joined to
		var leftRooms []string
		for _, e := range evs {
			after = e.Pos
			if !joined[e.RoomID] {
				if left[e.RoomID] == nil {
					leftRooms = append(leftRooms, e.RoomID)
				}
				left[e.RoomID] = append(left[e.RoomID], e.EventID)
				continue
			}
			_, err := s.cfg.RoomOps.Redact(ctx, rooms.RedactRequest{RoomID: e.RoomID, Sender: userID, EventID: e.EventID,
				Reason: "Account erased", ByService: true})
			if err != nil {
				return n, fmt.Errorf("erase %s: redact %s: %w", userID, e.EventID, err)
			}
			n++
		}
		for _, room := range leftRooms {
			k, err := s.cfg.RoomOps.EraseEvents(ctx, room, userID, left[room])
			n += k
			if err != nil {
				return n, fmt.Errorf("erase %s: %w", userID, err)
			}
		}
		if len(evs) < eraseBatch {
			return n, nil
		}
	}
}

// Reactivate lifts a deactivation. The account gets password, or none
// (it can log in only after a reset) when password is "". Rooms left and
// devices logged out stay so; an erased profile stays blank.
func (s *Service) Reactivate(ctx context.Context, actor, userID, password string) error {
	if s.cfg.Accounts == nil {
		return errors.New("reactivation is not configured")
	}
	if len(password) > MaxPasswordBytes {
		return fail(ErrInvalidParam, "password is too long")
	}
	u, err := s.getUser(ctx, userID)
	if err != nil {
		return err
	}
	if !u.Deactivated {
		return fail(ErrInvalidParam, "The account is not deactivated")
	}
	var hash string
	if password != "" {
		if hash, err = s.cfg.Hasher.Hash(ctx, password); err != nil {
			return err
		}
	}
	if err := s.cfg.Accounts.Reactivate(ctx, userID, hash); err != nil {
		return fmt.Errorf("reactivate %s: %w", userID, err)
	}
	return s.audit(ctx, actor, "user.reactivate", userID, map[string]any{"password_set": password != ""})
}
