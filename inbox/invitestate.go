package inbox

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// The stripped state an invitee sees before joining (the spec's
// invite_state): the room's create, join rules, name, avatar, canonical
// alias, encryption and topic events (strippedType), the invitee's own
// invite, and the inviter's m.room.member event. Without the inviter's
// member event a client cannot name a DM, which is why Element showed
// "Empty room" for one. This file is the one place that completes it.

// addInviters adds, to each invite room's state, the current member event
// of whoever sent the user's invite, when the state read for the room did
// not carry it (lazy-loaded rooms carry no one else's member event). One
// query for every invite room at once.
func (s *Syncer) addInviters(ctx context.Context, rms map[string]*roomResp, userID string) error {
	var pairs []storage.RoomUser
	for _, r := range rms {
		if r.section != "invite" {
			continue
		}
		inviter := ""
		have := false
		for _, e := range r.state {
			if e.Type == "m.room.member" && e.StateKeyOr() == userID {
				inviter = e.Sender
			}
		}
		if inviter == "" || inviter == userID {
			continue
		}
		for _, e := range r.state {
			if e.Type == "m.room.member" && e.StateKeyOr() == inviter {
				have = true
			}
		}
		if !have {
			pairs = append(pairs, storage.RoomUser{RoomID: r.id, UserID: inviter})
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	members, err := s.store.MemberEvents(ctx, pairs)
	if err != nil {
		return err
	}
	for _, e := range members {
		if r := rms[e.RoomID]; r != nil && r.section == "invite" {
			r.state = append(r.state, e)
		}
	}
	return nil
}
