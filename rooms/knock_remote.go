package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// Knocks across servers (make_knock, send_knock). The template comes from
// MakeMember and the knock itself runs the inbound pipeline, as a join
// does; this is what the resident server gives the knocking server back.

// KnockState returns the room state a knocking server is given with
// send_knock's answer (knock_room_state), as full PDUs: the same stripped
// state types an invitee's server gets, and the knocker's own membership.
func (s *Service) KnockState(ctx context.Context, roomID, knocker string) ([][]byte, error) {
	var state [][]byte
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		state = nil
		rs, err := b.room(ctx, roomID)
		if err != nil {
			return err
		}
		if !rs.hasLocalJoined(b.s.cfg.ServerName) {
			return fmt.Errorf("%w: %s", ErrNotResident, roomID)
		}
		for k, e := range rs.state {
			if (k.StateKey == "" && strippedInviteType(k.Type)) || (k.Type == "m.room.member" && k.StateKey == knocker) {
				state = append(state, e.ev.Raw)
			}
		}
		return nil
	})
	return state, err
}

// OutOfBandLeave stores ev, another server's kick or ban of a local user,
// when this server holds the room only through that user's knock or
// invite (no local user is joined): the resident server sends it the one
// event (federation/outbound's point span), and the user's sync must then
// show the room under "leave". The event is laid over the stripped state
// held, as an invite is (PersistJoined with Invite). handled is false when
// the event is not such a leave (a room this server is in, or a user
// whose membership here is not knock or invite): the caller then takes it
// through the normal pipeline. The caller has verified ev's signatures;
// its auth cannot be checked here (the room's power levels are not held),
// so, as Synapse does, the sending server is trusted for it.
func (s *Service) OutOfBandLeave(ctx context.Context, ev *pdu.Event) (handled bool, err error) {
	if ev.Type != "m.room.member" || ev.StateKey == nil || *ev.StateKey == ev.Sender ||
		pdu.Domain(*ev.StateKey) != s.cfg.ServerName {
		return false, nil
	}
	if m := membershipOf(ev.Content); m != "leave" && m != "ban" {
		return false, nil
	}
	err = s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		handled = false
		rs, err := b.room(ctx, ev.RoomID)
		if errors.Is(err, ErrUnknownRoom) {
			return nil
		}
		if err != nil {
			return err
		}
		if m := rs.membership(*ev.StateKey); (m != "knock" && m != "invite") || rs.hasLocalJoined(b.s.cfg.ServerName) {
			return nil
		}
		handled = true
		_, err = b.persistJoined(ctx, RemoteJoin{RoomID: rs.id, Version: rs.version, Join: ev, Invite: true,
			State: map[authrules.StateKey]string{}}, nil)
		return err
	})
	return handled, err
}
