package rooms

import (
	"context"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// Invites across servers (invite v2). An invite of another server's user
// must carry that server's signature before anyone stores it, so the room
// service builds the event, lets federation take it to the invitee's
// server (RemoteInviter, outside the writer: it waits on the network), and
// writes the countersigned event after. The policy (membership_policy.go)
// and the action limits run first, as for a local invite.

// RemoteInviter takes an invite to the invitee's server and returns the
// event as that server signed it. federation/membership.Joiner implements
// it; the caller has checked the invite against the room.
type RemoteInviter interface {
	SendInvite(ctx context.Context, version string, ev *pdu.Event, inviteState [][]byte) (*pdu.Event, error)
}

// strippedInviteType lists the state an invitee's server is given with an
// invite (invite_room_state), as sync gives a local invitee.
func strippedInviteType(t string) bool {
	switch t {
	case "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias",
		"m.room.encryption", "m.room.topic":
		return true
	}
	return false
}

// inviteRemote makes req, an invite of another server's user.
func (s *Service) inviteRemote(ctx context.Context, req MembershipRequest) (string, error) {
	if s.cfg.Remote == nil {
		return "", fmt.Errorf("%w: %s is on another server, and federation is off", ErrForbidden, req.Target)
	}
	var ev *pdu.Event
	var version string
	var state [][]byte
	err := s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		ev, version, state = nil, "", nil
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		if rs.membership(req.Sender) != "join" {
			return errNotInRoom(req.RoomID)
		}
		if err := checkMemberChange(rs, req.Target, "invite"); err != nil {
			return err
		}
		content := map[string]any{"membership": "invite"}
		if req.Reason != "" {
			content["reason"] = req.Reason
		}
		if req.IsDirect {
			content["is_direct"] = true
		}
		p := pdu.Proto{RoomID: rs.id, Sender: req.Sender, Type: "m.room.member", StateKey: strPtr(req.Target), Content: mustJSON(content),
			OriginServerTS: b.s.cfg.Now().UnixMilli()}
		p.PrevEvents, p.Depth = rs.prevEvents()
		auth := map[authrules.StateKey]*pdu.Event{}
		for _, k := range authrules.Needed(p.Type, p.StateKey, p.Sender, p.Content) {
			if e := rs.get(k.Type, k.StateKey); e != nil {
				auth[k] = e
				if k.Type == "m.room.create" && pdu.RoomIDFromCreate(rs.version) {
					continue
				}
				p.AuthEvents = append(p.AuthEvents, e.ID)
			}
		}
		built, err := pdu.Build(p, rs.version, b.s.cfg.Key)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := authrules.Check(rs.version, built, auth); err != nil {
			return fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		for k, e := range rs.state {
			if (k.StateKey == "" && strippedInviteType(k.Type)) || (k.Type == "m.room.member" && k.StateKey == req.Sender) {
				state = append(state, e.ev.Raw)
			}
		}
		ev, version = built, rs.version
		return nil
	})
	if err != nil {
		return "", err
	}
	signed, err := s.cfg.Remote.SendInvite(ctx, version, ev, state)
	if err != nil {
		return "", err
	}
	if signed.ID != ev.ID {
		return "", fmt.Errorf("%w: the invitee's server changed the invite", ErrForbidden)
	}
	err = s.submit(ctx, req.Sender, func(ctx context.Context, b *batch) error {
		rs, err := b.room(ctx, req.RoomID)
		if err != nil {
			return err
		}
		if !sameSet(signed.PrevEvents, rs.extrem) {
			// The room moved while the invite was out: the event no longer
			// extends the current state. Rare; the client may invite again.
			return fmt.Errorf("%w: the room changed while the invite was being signed; invite again", ErrBusy)
		}
		auth := map[authrules.StateKey]*pdu.Event{}
		for _, k := range authrules.Needed(signed.Type, signed.StateKey, signed.Sender, signed.Content) {
			if e := rs.get(k.Type, k.StateKey); e != nil {
				auth[k] = e
			}
		}
		if err := authrules.Check(rs.version, signed, auth); err != nil {
			return fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		_, err = b.write(ctx, rs, signed, nil)
		return err
	})
	if err != nil {
		return "", err
	}
	return signed.ID, nil
}

// CheckInviteFrom runs the server's invite policy (membership_policy.go)
// on an invite another server sends for a local user: the room is not
// blocked here, the invitee exists, and their blocks and DM policy accept
// the inviter. The same rules a local invite passes, in the same place.
func (s *Service) CheckInviteFrom(ctx context.Context, roomID, inviter, invitee string) error {
	if err := s.checkNotBlocked(roomID); err != nil {
		return err
	}
	if s.cfg.Policy == nil {
		return nil
	}
	return s.cfg.Policy.CheckInvite(ctx, inviter, invitee)
}
