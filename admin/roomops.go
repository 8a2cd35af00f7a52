package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Purger deletes room history in the room writer; *rooms.Service
// implements it.
type Purger interface {
	PurgeHistory(ctx context.Context, roomID string, beforeTS int64) (int64, error)
	PurgeRoom(ctx context.Context, roomID string) (int64, error)
}

// DeleteRoomResult says what a room deletion did.
type DeleteRoomResult struct {
	// Left are the local users made to leave; Failed those whose leave
	// failed (the error is in the log of the call, and a second delete
	// retries them).
	Left   []string `json:"kicked_users"`
	Failed []string `json:"failed_to_kick_users"`
	// PurgedEvents counts the events deleted from the store (purge only).
	PurgedEvents int64 `json:"purged_events"`
}

// Progress is told how far a long action is: done of total steps.
type Progress func(done, total int)

const deletedReason = "This room has been deleted by the server administrator"

func (s *Service) knownRoom(ctx context.Context, roomID string) (storage.Room, error) {
	if roomID == "" || roomID[0] != '!' || len(roomID) > 255 {
		return storage.Room{}, fail(ErrInvalidParam, "Not a room ID")
	}
	r, err := s.cfg.Store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return r, fail(ErrNotFound, "Unknown room")
	}
	return r, err
}

func (s *Service) isLocal(userID string) bool { return strings.HasSuffix(userID, ":"+s.cfg.ServerName) }

// DeleteRoom takes a room down: it is blocked (so nobody local joins or
// sends again), every local member, invitee and knocker leaves it, and
// with purge everything the store holds about it is deleted. Remote
// members stay in the room on their servers. Leaves go through the room
// writer as the members themselves, so every client sees them. progress,
// if not nil, is told after each leave.
func (s *Service) DeleteRoom(ctx context.Context, actor, roomID string, purge bool, progress Progress) (DeleteRoomResult, error) {
	res := DeleteRoomResult{Left: []string{}, Failed: []string{}}
	if s.cfg.RoomOps == nil || s.cfg.Purger == nil {
		return res, errors.New("room deletion is not configured")
	}
	if _, err := s.knownRoom(ctx, roomID); err != nil {
		return res, err
	}
	if err := s.cfg.Rooms.SetRoomBlocked(ctx, roomID, true, actor); err != nil {
		return res, err
	}
	ms, err := s.cfg.Store.RoomMemberships(ctx, roomID)
	if err != nil {
		return res, err
	}
	var leaving []string
	for _, m := range ms {
		if s.isLocal(m.UserID) && (m.Membership == "join" || m.Membership == "invite" || m.Membership == "knock") {
			leaving = append(leaving, m.UserID)
		}
	}
	var errs []error
	for i, u := range leaving {
		_, err := s.cfg.RoomOps.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: roomID, Sender: u, Target: u,
			Membership: "leave", Reason: deletedReason, ByService: true})
		if err != nil {
			res.Failed = append(res.Failed, u)
			errs = append(errs, fmt.Errorf("leave of %s: %w", u, err))
		} else {
			res.Left = append(res.Left, u)
		}
		if progress != nil {
			progress(i+1, len(leaving))
		}
	}
	if purge && len(errs) == 0 {
		if res.PurgedEvents, err = s.cfg.Purger.PurgeRoom(ctx, roomID); err != nil {
			return res, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("delete %s: %w", roomID, err)
	}
	return res, s.audit(ctx, actor, "room.delete", roomID, map[string]any{"purge": purge, "kicked": len(res.Left), "purged_events": res.PurgedEvents})
}

// PurgeHistory deletes a room's messages older than beforeTS (ms): every
// non-state event but the newest ones the room's DAG builds on. State
// stays, so the room keeps working; sync and /messages serve what is
// left. beforeTS may not lie in the future.
func (s *Service) PurgeHistory(ctx context.Context, actor, roomID string, beforeTS int64) (int64, error) {
	if s.cfg.Purger == nil {
		return 0, errors.New("purging is not configured")
	}
	if beforeTS <= 0 || beforeTS > s.cfg.Now().UnixMilli() {
		return 0, fail(ErrInvalidParam, "before_ts must be a time in the past, in milliseconds since the epoch")
	}
	if _, err := s.knownRoom(ctx, roomID); err != nil {
		return 0, err
	}
	n, err := s.cfg.Purger.PurgeHistory(ctx, roomID, beforeTS)
	if err != nil {
		return 0, err
	}
	return n, s.audit(ctx, actor, "room.purge_history", roomID, map[string]any{"before_ts": beforeTS, "purged_events": n})
}

// MakeRoomAdmin gives userID, a local user, the highest power level in a
// room, as Synapse's "make room admin" does: the change is a power levels
// event sent by the room's most powerful local member, so the auth rules
// hold (nobody grants more than their own level). If userID is not
// joined, they join first (invited by that member if the room is not
// public). If no local member may change the power levels, it refuses.
func (s *Service) MakeRoomAdmin(ctx context.Context, actor, roomID, userID string) error {
	if s.cfg.RoomOps == nil {
		return errors.New("room actions are not configured")
	}
	room, err := s.knownRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if _, err := s.getUser(ctx, userID); err != nil {
		return err
	}
	state, err := s.cfg.Store.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	var create, plEv *pdu.Event
	var plContent json.RawMessage
	joinRule := "invite"
	for _, e := range state {
		if e.StateKeyOr() != "" {
			continue
		}
		c := gjson.GetBytes(e.Client, "content")
		ev := &pdu.Event{Sender: e.Sender, Content: json.RawMessage(c.Raw)}
		switch e.Type {
		case "m.room.create":
			create = ev
		case "m.room.power_levels":
			plEv, plContent = ev, json.RawMessage(c.Raw)
		case "m.room.join_rules":
			joinRule = c.Get("join_rule").Str
		}
	}
	if create == nil {
		return fail(ErrInvalidParam, "The room has no create event here")
	}
	pl, err := authrules.RoomPowerLevels(room.Version, create, plEv)
	if err != nil {
		return fmt.Errorf("power levels of %s: %w", roomID, err)
	}
	ms, err := s.cfg.Store.RoomMemberships(ctx, roomID)
	if err != nil {
		return err
	}
	var best string
	joined := false
	for _, m := range ms {
		if m.Membership != "join" {
			continue
		}
		joined = joined || m.UserID == userID
		if s.isLocal(m.UserID) && (best == "" || pl.UserLevel(m.UserID) > pl.UserLevel(best)) {
			best = m.UserID
		}
	}
	if best == "" || pl.UserLevel(best) < pl.EventLevel("m.room.power_levels", true) {
		return fail(ErrInvalidParam, "No local member of this room may change its power levels")
	}
	if pl.IsCreator(userID) {
		return s.audit(ctx, actor, "room.make_admin", roomID, map[string]any{"user_id": userID, "by": userID})
	}
	if !joined {
		if joinRule != "public" {
			if _, err := s.cfg.RoomOps.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: roomID, Sender: best, Target: userID,
				Membership: "invite", ByService: true}); err != nil {
				return fmt.Errorf("invite %s as %s: %w", userID, best, err)
			}
		}
		if _, err := s.cfg.RoomOps.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: roomID, Sender: userID, Target: userID,
			Membership: "join", ByService: true}); err != nil {
			return fmt.Errorf("join %s: %w", userID, err)
		}
	}
	level := pl.UserLevel(best)
	if pl.IsCreator(best) { // unlimited: the top of the users map, and at least 100
		level = 100
		for _, v := range pl.Users {
			level = max(level, v)
		}
	}
	content := map[string]any{}
	if len(plContent) > 0 {
		if err := json.Unmarshal(plContent, &content); err != nil {
			return fmt.Errorf("power levels of %s: %w", roomID, err)
		}
	} else { // no power levels event yet: write the defaults out
		content = map[string]any{"users": map[string]any{best: level}}
	}
	users, _ := content["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	users[userID] = level
	content["users"] = users
	body, err := json.Marshal(content)
	if err != nil {
		return err
	}
	empty := ""
	if _, err := s.cfg.RoomOps.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: best, Type: "m.room.power_levels", StateKey: &empty,
		Content: body, ByService: true}); err != nil {
		return fmt.Errorf("power levels as %s: %w", best, err)
	}
	return s.audit(ctx, actor, "room.make_admin", roomID, map[string]any{"user_id": userID, "by": best})
}
