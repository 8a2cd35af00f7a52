package inbox

import (
	"context"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// fillRooms loads every room's timeline, state, receipts, unread counts and
// summary with a fixed number of batched queries, however many rooms.
func (s *Syncer) fillRooms(ctx context.Context, req Request, rooms map[string]*roomResp, limit int, muted map[string]bool) error {
	f := req.Filter
	var bounds []storage.RoomBound
	var joinIDs, newIDs, inviteIDs []string
	for id, r := range rooms {
		switch r.section {
		case "invite", "knock":
			inviteIDs = append(inviteIDs, id)
			continue
		case "join":
			joinIDs = append(joinIDs, id)
			if r.newlyJoin || r.fullState {
				newIDs = append(newIDs, id)
			}
		}
		if r.delta != nil {
			continue // its timeline and state come rendered (delta.go)
		}
		bounds = append(bounds, storage.RoomBound{RoomID: id, Since: r.since, Upto: r.upto})
	}
	// Members woken by one commit ask for the same range: the first reads
	// it, the others copy it from the cache.
	cache := s.n.timelines
	gen := cache.generation()
	missing := bounds[:0]
	for _, b := range bounds {
		r := rooms[b.RoomID]
		var hit bool
		if r.timeline, hit = cache.appendRange(r.timeline, b.RoomID, b.Since, b.Upto, limit+1); !hit {
			missing = append(missing, b)
		}
	}
	events, err := s.readTimelines(ctx, missing, limit+1, gen)
	if err != nil {
		return err
	}
	for _, e := range events {
		r := rooms[e.RoomID]
		r.timeline = append(r.timeline, e)
	}
	for _, b := range missing {
		// Only incremental reads are kept: they are what a commit's wake-up
		// repeats, while a user's initial sync of a thousand rooms would
		// only push the hot rooms out.
		if b.Since > 0 {
			cache.store(b.RoomID, b.Since, b.Upto, rooms[b.RoomID].timeline, limit+1, gen)
		}
	}
	var gaps []storage.RoomBound
	for _, r := range rooms {
		if len(r.timeline) > limit {
			r.timeline = r.timeline[len(r.timeline)-limit:]
			r.limited = true
			if !r.newlyJoin && !r.fullState && r.section == "join" {
				gaps = append(gaps, storage.RoomBound{RoomID: r.id, Since: r.since, Upto: r.timeline[0].Pos - 1})
			}
		}
	}

	if err := s.applyHistoryVisibility(ctx, req.UserID, rooms); err != nil {
		return err
	}

	// State: full state for new rooms and invites, the skipped-over state for
	// limited incremental rooms. Rooms above the small tier are always
	// lazy-loaded: their member list is too big to send (rooms/tiers.go).
	quiet := s.n.quietOf(rooms)
	lazyAll := f.Room.State.LazyLoadMembers
	lazyIn := func(r *roomResp) bool { return lazyAll || quiet[r.id] }
	var lazyIDs, fullIDs []string
	for _, id := range append(append([]string(nil), newIDs...), inviteIDs...) {
		if lazyIn(rooms[id]) {
			lazyIDs = append(lazyIDs, id)
		} else {
			fullIDs = append(fullIDs, id)
		}
	}
	// Member events of lazy rooms come below, for the timeline's senders only.
	full, err := s.store.CurrentStateWithoutMembers(ctx, lazyIDs, req.UserID)
	if err != nil {
		return err
	}
	fullRest, err := s.store.CurrentStateOf(ctx, fullIDs)
	if err != nil {
		return err
	}
	if len(fullRest) > 0 {
		full = append(full, fullRest...)
	}
	if full, err = s.stateBeforeTimelines(ctx, rooms, full); err != nil {
		return err
	}
	for _, e := range full {
		r := rooms[e.RoomID]
		if r.stripped() {
			if strippedType(e.Type) || (e.Type == "m.room.member" && e.StateKeyOr() == req.UserID) {
				r.state = append(r.state, e)
			}
			continue
		}
		if !f.Room.State.Allows(e.Type, e.Sender) {
			continue
		}
		if lazyIn(r) && e.Type == "m.room.member" && e.StateKeyOr() != req.UserID && !sentInTimeline(r, e.StateKeyOr()) {
			continue
		}
		r.state = append(r.state, e)
	}
	if err := s.addInviters(ctx, rooms, req.UserID); err != nil { // invitestate.go
		return err
	}
	gapState, err := s.store.StateEventsIn(ctx, gaps)
	if err != nil {
		return err
	}
	latest := map[[3]string]int{}
	for _, e := range gapState {
		r := rooms[e.RoomID]
		if lazyIn(r) && e.Type == "m.room.member" && !sentInTimeline(r, e.StateKeyOr()) {
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
	if lazyAll || len(quiet) > 0 {
		// Members of timeline senders that the state above did not carry.
		var pairs []storage.RoomUser
		for _, r := range rooms {
			if r.stripped() || !lazyIn(r) {
				continue
			}
			seen := map[string]bool{}
			for _, e := range r.state {
				if e.Type == "m.room.member" {
					seen[e.StateKeyOr()] = true
				}
			}
			var clipped []string // a leave room's senders, read as of the leave
			for _, e := range r.timeline {
				if !seen[e.Sender] {
					seen[e.Sender] = true
					if clipsState(r) {
						clipped = append(clipped, e.Sender)
					} else {
						pairs = append(pairs, storage.RoomUser{RoomID: r.id, UserID: e.Sender})
					}
				}
			}
			// Like every state read (rooms.Access): a leaver sees members as
			// of the end of their join, one who never joined sees none.
			if len(clipped) > 0 && r.stateEnd > 0 {
				at, err := s.store.MemberEventsAt(ctx, r.id, clipped, r.stateEnd)
				if err != nil {
					return err
				}
				for _, e := range at {
					if !inTimeline(r, e.EventID) {
						r.state = append(r.state, e)
					}
				}
			}
		}
		members, err := s.memberEvents(ctx, pairs)
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

	if len(joinIDs) == 0 {
		return nil
	}
	if err := s.fillRoomTails(ctx, req, rooms, joinIDs, len(newIDs) > 0, muted); err != nil {
		return err
	}
	if f.Room.State.Allows(tierEventType, "") {
		return s.addTierEvents(ctx, rooms, joinIDs, quiet)
	}
	return nil
}

// fillRoomTails adds what each member's copy of a joined room has of its
// own: receipts, unread counts and the summary. It is all a woken member
// whose rooms all come as shared deltas needs (build calls it alone then,
// and fillRooms after the timelines and state). anyNew says a room of ids
// is newly joined or full state.
func (s *Syncer) fillRoomTails(ctx context.Context, req Request, rooms map[string]*roomResp, joinIDs []string, anyNew bool,
	muted map[string]bool) error {
	var sincePos int64
	if req.Since != nil {
		sincePos = req.Since.Pos
	}
	var upto int64
	for _, id := range joinIDs {
		if rooms[id].upto > upto {
			upto = rooms[id].upto
		}
	}
	receiptsFrom := sincePos
	if anyNew {
		receiptsFrom = 0 // newly joined rooms get every current receipt
	}
	// A big room shows each member only their own receipts. Rooms with no
	// receipt since the token are not asked: a message wakes every member
	// of its room, and none of them needs a receipts query for it.
	receiptIDs := s.n.withReceiptNews(joinIDs, rooms, sincePos)
	receipts, err := s.store.ReceiptsSinceOwnIn(ctx, req.UserID, receiptIDs, receiptsFrom, upto, s.n.quietAmong(receiptIDs))
	if err != nil {
		return err
	}
	for _, rc := range receipts {
		r := rooms[rc.RoomID]
		if r.newlyJoin || rc.Pos > sincePos {
			r.receipts = append(r.receipts, rc)
		}
	}
	// Counts come from memory when the cache knows the room (unread.go);
	// the rest from one query, whose answers are kept for the next wake-up.
	unread := make(map[string]storage.RoomUnread, len(joinIDs))
	if missed := s.n.unread.lookup(req.UserID, joinIDs, upto, unread, nil); len(missed) > 0 {
		ids := make([]string, len(missed))
		for i, t := range missed {
			ids[i] = t.room
		}
		got, err := s.store.UnreadCountsByThread(ctx, req.UserID, ids, upto)
		if err != nil {
			return err
		}
		s.n.unread.keep(req.UserID, missed, upto, got)
		for id, u := range got {
			unread[id] = u
		}
	}
	byThread := req.Filter != nil && req.Filter.Room.Timeline.UnreadThreadNotifications
	for _, id := range joinIDs {
		ru := unread[id]
		u := ru.Total()
		if byThread {
			u = ru.Main
			rooms[id].threads = threadCounts(ru.Threads, muted[id])
		}
		if muted[id] {
			u.Notifications = u.Highlights
		}
		rooms[id].unread = &u
	}
	// A summary goes out when it may have changed: in a newly joined room,
	// or when members came or went. A message in a big room then costs no
	// read of its member list.
	var summaryIDs []string
	for _, id := range joinIDs {
		if r := rooms[id]; r.newlyJoin || r.fullState || membersChanged(r) {
			summaryIDs = append(summaryIDs, id)
		}
	}
	if len(summaryIDs) > 0 {
		summaries, err := s.store.RoomSummaries(ctx, req.UserID, summaryIDs)
		if err != nil {
			return err
		}
		for id, sum := range summaries {
			rooms[id].summary = sum
		}
	}
	return nil
}

// applyHistoryVisibility hides the events of newly joined and left rooms
// that the user may not see (history_visibility "joined" or "invited"
// before they were there; anything after they left). Rooms the user stayed
// joined to throughout need no check. Two queries for all rooms.
func (s *Syncer) applyHistoryVisibility(ctx context.Context, user string, rms map[string]*roomResp) error {
	var ids []string
	for id, r := range rms {
		if (r.newlyJoin || r.section == "leave") && len(r.timeline) > 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil // the common wake-up: no query, no maps
	}
	members, vis, err := s.store.MembershipHistories(ctx, user, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		r := rms[id]
		v := rooms.NewVisibility(user, members[id], vis[id])
		r.timeline = v.Filter(r.timeline)
		r.stateEnd = v.StateEnd()
	}
	return nil
}

// clipsState reports whether r is a room the user left and may read only as
// of the end of their join (rooms.Visibility.StateEnd), not as it is now.
func clipsState(r *roomResp) bool {
	return r.section == "leave" && r.stateEnd != rooms.StateCurrent
}

// stateBeforeTimelines turns current state into the state at the start of
// each room's timeline, as the spec's "state" section means: for every key
// a timeline event changes, the value it replaced (its unsigned
// replaces_state), or nothing when the key was new. One query in all.
func (s *Syncer) stateBeforeTimelines(ctx context.Context, rms map[string]*roomResp, current []storage.Event) ([]storage.Event, error) {
	type key struct{ room, typ, sk string }
	replaced := map[key]string{} // key -> event ID it had before the timeline ("" = none)
	var want []string
	for _, r := range rms {
		if r.stripped() {
			continue
		}
		for _, e := range r.timeline {
			if e.StateKey == nil {
				continue
			}
			k := key{r.id, e.Type, *e.StateKey}
			if _, seen := replaced[k]; seen {
				continue
			}
			prev := gjson.GetBytes(e.Unsigned, "replaces_state").String()
			replaced[k] = prev
			if prev != "" {
				want = append(want, prev)
			}
		}
	}
	if len(replaced) == 0 {
		return current, nil
	}
	prevs, err := s.store.EventPositions(ctx, want)
	if err != nil {
		return nil, err
	}
	out := current[:0:0]
	for _, e := range current {
		k := key{e.RoomID, e.Type, e.StateKeyOr()}
		prev, changed := replaced[k]
		if !changed {
			out = append(out, e)
			continue
		}
		if p, ok := prevs[prev]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// membersChanged reports whether a room's response carries a membership
// change (a limited timeline's gap state counts too).
func membersChanged(r *roomResp) bool {
	if r.delta != nil {
		return r.delta.membersChanged
	}
	if r.limited {
		return true
	}
	for i := range r.timeline {
		if r.timeline[i].Type == "m.room.member" {
			return true
		}
	}
	return false
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

// threadCounts is what unread_thread_notifications shows: the threads with
// a count, only highlights in a muted room. in is shared: a new map is made
// when a count changes.
func threadCounts(in map[string]storage.Unread, muted bool) map[string]storage.Unread {
	if !muted {
		return in
	}
	out := make(map[string]storage.Unread, len(in))
	for root, u := range in {
		if u.Highlights > 0 {
			out[root] = storage.Unread{Notifications: u.Highlights, Highlights: u.Highlights}
		}
	}
	return out
}
