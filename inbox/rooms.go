package inbox

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// fillRooms loads every room's timeline, state, receipts, unread counts and
// summary with a fixed number of batched queries, however many rooms.
func (s *Syncer) fillRooms(ctx context.Context, req Request, rooms map[string]*roomResp, limit int) error {
	f := req.Filter
	var bounds []storage.RoomBound
	var joinIDs, newIDs, inviteIDs []string
	for id, r := range rooms {
		switch r.section {
		case "invite":
			inviteIDs = append(inviteIDs, id)
			continue
		case "join":
			joinIDs = append(joinIDs, id)
			if r.newlyJoin {
				newIDs = append(newIDs, id)
			}
		}
		bounds = append(bounds, storage.RoomBound{RoomID: id, Since: r.since, Upto: r.upto})
	}
	events, err := s.store.RoomTimelines(ctx, bounds, limit+1)
	if err != nil {
		return err
	}
	for _, e := range events {
		r := rooms[e.RoomID]
		r.timeline = append(r.timeline, e)
	}
	var gaps []storage.RoomBound
	for _, r := range rooms {
		if len(r.timeline) > limit {
			r.timeline = r.timeline[len(r.timeline)-limit:]
			r.limited = true
			if !r.newlyJoin && r.section == "join" {
				gaps = append(gaps, storage.RoomBound{RoomID: r.id, Since: r.since, Upto: r.timeline[0].Pos - 1})
			}
		}
	}

	// State: full state for new rooms and invites, the skipped-over state for
	// limited incremental rooms.
	full, err := s.store.CurrentStateOf(ctx, append(append([]string(nil), newIDs...), inviteIDs...))
	if err != nil {
		return err
	}
	lazy := f.Room.State.LazyLoadMembers
	for _, e := range full {
		r := rooms[e.RoomID]
		if r.section == "invite" {
			if strippedType(e.Type) || (e.Type == "m.room.member" && e.StateKeyOr() == req.UserID) {
				r.state = append(r.state, e)
			}
			continue
		}
		if inTimeline(r, e.EventID) || !f.Room.State.Allows(e.Type, e.Sender) {
			continue
		}
		if lazy && e.Type == "m.room.member" && e.StateKeyOr() != req.UserID && !sentInTimeline(r, e.StateKeyOr()) {
			continue
		}
		r.state = append(r.state, e)
	}
	gapState, err := s.store.StateEventsIn(ctx, gaps)
	if err != nil {
		return err
	}
	latest := map[[3]string]int{}
	for _, e := range gapState {
		r := rooms[e.RoomID]
		if lazy && e.Type == "m.room.member" && !sentInTimeline(r, e.StateKeyOr()) {
			continue
		}
		k := [3]string{e.RoomID, e.Type, e.StateKeyOr()}
		if i, ok := latest[k]; ok {
			r.state[i] = e
			continue
		}
		latest[k] = len(r.state)
		r.state = append(r.state, e)
	}
	if lazy {
		// Members of timeline senders that the state above did not carry.
		var pairs []storage.RoomUser
		for _, r := range rooms {
			if r.section == "invite" || r.newlyJoin {
				continue
			}
			seen := map[string]bool{}
			for _, e := range r.state {
				if e.Type == "m.room.member" {
					seen[e.StateKeyOr()] = true
				}
			}
			for _, e := range r.timeline {
				if !seen[e.Sender] {
					seen[e.Sender] = true
					pairs = append(pairs, storage.RoomUser{RoomID: r.id, UserID: e.Sender})
				}
			}
		}
		members, err := s.store.MemberEvents(ctx, pairs)
		if err != nil {
			return err
		}
		for _, e := range members {
			if r := rooms[e.RoomID]; !inTimeline(r, e.EventID) {
				r.state = append(r.state, e)
			}
		}
	}
	for _, r := range rooms {
		if len(r.timeline) == 0 {
			continue
		}
		kept := r.timeline[:0]
		for _, e := range r.timeline {
			if f.Room.Timeline.Allows(e.Type, e.Sender) {
				kept = append(kept, e)
			}
		}
		r.timeline = kept
	}

	var sincePos int64
	if req.Since != nil {
		sincePos = req.Since.Pos
	}
	if len(joinIDs) == 0 {
		return nil
	}
	var upto int64
	for _, id := range joinIDs {
		if rooms[id].upto > upto {
			upto = rooms[id].upto
		}
	}
	receiptsFrom := sincePos
	if len(newIDs) > 0 {
		receiptsFrom = 0 // newly joined rooms get every current receipt
	}
	receipts, err := s.store.ReceiptsSince(ctx, req.UserID, joinIDs, receiptsFrom, upto)
	if err != nil {
		return err
	}
	for _, rc := range receipts {
		r := rooms[rc.RoomID]
		if r.newlyJoin || rc.Pos > sincePos {
			r.receipts = append(r.receipts, rc)
		}
	}
	unread, err := s.store.UnreadCounts(ctx, req.UserID, joinIDs, upto)
	if err != nil {
		return err
	}
	for _, id := range joinIDs {
		u := unread[id]
		rooms[id].unread = &u
	}
	summaries, err := s.store.RoomSummaries(ctx, req.UserID, joinIDs)
	if err != nil {
		return err
	}
	for id, sum := range summaries {
		rooms[id].summary = sum
	}
	return nil
}

func inTimeline(r *roomResp, eventID string) bool {
	for i := range r.timeline {
		if r.timeline[i].EventID == eventID {
			return true
		}
	}
	return false
}

func sentInTimeline(r *roomResp, user string) bool {
	for i := range r.timeline {
		if r.timeline[i].Sender == user {
			return true
		}
	}
	return false
}

// strippedType lists the state an invitee may see before joining.
func strippedType(t string) bool {
	switch t {
	case "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias",
		"m.room.encryption", "m.room.topic":
		return true
	}
	return false
}
