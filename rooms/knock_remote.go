package rooms

import (
	"context"
	"fmt"
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
