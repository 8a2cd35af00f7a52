package admin

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/parley-im/parley/storage"
)

// RoomSummary is a row of the room list.
type RoomSummary struct {
	RoomID        string `json:"room_id"`
	Name          string `json:"name,omitempty"`
	Version       string `json:"room_version"`
	Creator       string `json:"creator"`
	Public        bool   `json:"public"`
	CreatedTS     int64  `json:"creation_ts"`
	JoinedMembers int64  `json:"joined_members"`
	Blocked       bool   `json:"blocked"`
}

// Rooms pages through rooms in room ID order; search, if not "", keeps
// those whose ID or an alias contains it.
func (s *Service) Rooms(ctx context.Context, search string, p Page) (rooms []RoomSummary, next string, err error) {
	got, err := s.cfg.Store.ListRooms(ctx, search, p.From, p.Limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(got) > p.Limit {
		got = got[:p.Limit]
		next = got[len(got)-1].RoomID
	}
	rooms = make([]RoomSummary, len(got))
	for i, r := range got {
		rooms[i] = RoomSummary{RoomID: r.RoomID, Version: r.Version, Creator: r.Creator, Public: r.Published,
			CreatedTS: r.CreatedTS, JoinedMembers: r.JoinedMembers, Blocked: r.Blocked}
	}
	return rooms, next, nil
}

// RoomDetails is one room in full.
type RoomDetails struct {
	RoomSummary
	Members map[string]string `json:"members"` // user ID -> membership
}

// Room returns one room's details.
func (s *Service) Room(ctx context.Context, roomID string) (RoomDetails, error) {
	r, err := s.cfg.Store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return RoomDetails{}, fail(ErrNotFound, "Unknown room")
	}
	if err != nil {
		return RoomDetails{}, err
	}
	ms, err := s.cfg.Store.RoomMemberships(ctx, roomID)
	if err != nil {
		return RoomDetails{}, err
	}
	d := RoomDetails{RoomSummary: RoomSummary{RoomID: r.RoomID, Version: r.Version, Creator: r.Creator, Public: r.Published,
		CreatedTS: r.CreatedTS, Blocked: s.cfg.Rooms.RoomBlocked(roomID)}, Members: make(map[string]string, len(ms))}
	for _, m := range ms {
		d.Members[m.UserID] = m.Membership
		if m.Membership == "join" {
			d.JoinedMembers++
		}
	}
	state, err := s.cfg.Store.CurrentState(ctx, roomID)
	if err != nil {
		return RoomDetails{}, err
	}
	for _, e := range state {
		if e.Type == "m.room.name" && e.StateKeyOr() == "" {
			var c struct {
				Content struct {
					Name string `json:"name"`
				} `json:"content"`
			}
			if json.Unmarshal(e.Client, &c) == nil {
				d.Name = c.Content.Name
			}
		}
	}
	return d, nil
}

// State returns a room's current state events in client form.
func (s *Service) State(ctx context.Context, roomID string) ([]json.RawMessage, error) {
	if _, err := s.cfg.Store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return nil, fail(ErrNotFound, "Unknown room")
	} else if err != nil {
		return nil, err
	}
	state, err := s.cfg.Store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(state))
	for i, e := range state {
		out[i] = json.RawMessage(e.Client)
	}
	return out, nil
}

// BlockRoom blocks a room, or lifts the block: while blocked no local user
// may join it, be invited or send into it (rooms/blocked.go). A room the
// server does not know may be blocked too, so that nobody joins it later.
func (s *Service) BlockRoom(ctx context.Context, actor, roomID string, block bool) error {
	if roomID == "" || roomID[0] != '!' || len(roomID) > 255 {
		return fail(ErrInvalidParam, "Not a room ID")
	}
	if err := s.cfg.Rooms.SetRoomBlocked(ctx, roomID, block, actor); err != nil {
		return err
	}
	action := "room.block"
	if !block {
		action = "room.unblock"
	}
	return s.audit(ctx, actor, action, roomID, nil)
}
