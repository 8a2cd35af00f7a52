package relations

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Viewer decides which events a user may see; *rooms.Access is one.
type Viewer interface {
	CanSee(e *storage.Event) bool
}

// Bundle adds the bundled aggregations (unsigned["m.relations"]) to events,
// all of roomID, as the viewer who sees them (v: what their user may see):
//   - m.thread: the number of replies, the latest reply the viewer may see,
//     and whether the viewer started the thread or replied in it;
//   - m.replace: the latest edit by the original sender, of the original's
//     type (an edit by anyone else is never applied);
//   - m.reference: the IDs of the events that reference it.
//
// It costs two queries for the whole slice, whatever its length: the
// aggregates, then the latest events they name. Events keep their stored
// unsigned members; the new unsigned is a fresh slice, so shared cached
// bytes are never written (but the events' own structs are: callers pass
// slices they own).
//
// The spec (v1.7 on) has servers bundle the edit, not replace the content:
// clients apply m.new_content themselves.
func (s *Service) Bundle(ctx context.Context, v Viewer, who rooms.Viewer, roomID string, events []storage.Event) error {
	return s.bundle(ctx, who, [][]storage.Event{events}, func(string) (Viewer, error) { return v, nil }, true)
}

// BundleRooms is Bundle for many rooms at once, for sync: timelines maps a
// room ID to events of that room the caller owns. Visibility of the latest
// events is decided per room from the user's membership histories, loaded
// in one query and only when some event has relations.
func (s *Service) BundleRooms(ctx context.Context, who rooms.Viewer, timelines map[string][]storage.Event) error {
	groups := make([][]storage.Event, 0, len(timelines))
	roomIDs := make([]string, 0, len(timelines))
	for id, evs := range timelines {
		if len(evs) > 0 {
			groups = append(groups, evs)
			roomIDs = append(roomIDs, id)
		}
	}
	var members, vis map[string][]storage.Event
	loaded := false
	return s.bundle(ctx, who, groups, func(roomID string) (Viewer, error) {
		if !loaded {
			var err error
			if members, vis, err = s.store.MembershipHistories(ctx, who.UserID, roomIDs); err != nil {
				return nil, err
			}
			loaded = true
		}
		return rooms.NewVisibility(who.UserID, members[roomID], vis[roomID]), nil
	}, true)
}

// bundle does the work of Bundle over groups of events; viewerFor gives the
// visibility rule of a room, and is asked only for rooms whose latest
// related events must be checked. With nested, the latest thread replies
// get their own bundles (their latest edit, so a thread summary shows the
// edited text), one level deep: two more queries, only when some event in
// the groups has a thread.
func (s *Service) bundle(ctx context.Context, who rooms.Viewer, groups [][]storage.Event, viewerFor func(roomID string) (Viewer, error), nested bool) error {
	var ids []string
	for _, evs := range groups {
		for i := range evs {
			if !evs[i].IsState() {
				ids = append(ids, evs[i].EventID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	aggs, err := s.store.RelationAggregates(ctx, who.UserID, ids)
	if err != nil || len(aggs) == 0 {
		return err
	}
	var positions []int64
	for _, a := range aggs {
		if a.RelType == "m.thread" || a.RelType == "m.replace" {
			positions = append(positions, a.LatestPos)
		}
	}
	latest, err := s.store.EventsAt(ctx, positions)
	if err != nil {
		return err
	}
	byPos := make(map[int64]*storage.Event, len(latest))
	viewers := map[string]Viewer{}
	for i := range latest {
		e := &latest[i]
		v, ok := viewers[e.RoomID]
		if !ok {
			if v, err = viewerFor(e.RoomID); err != nil {
				return err
			}
			viewers[e.RoomID] = v
		}
		if v.CanSee(e) {
			byPos[e.Pos] = e
		}
	}
	type bundle struct {
		thread, replace *storage.RelationAggregate
		refs            []string
	}
	byParent := make(map[string]*bundle, len(aggs))
	for i := range aggs {
		a := &aggs[i]
		b := byParent[a.ParentID]
		if b == nil {
			b = &bundle{}
			byParent[a.ParentID] = b
		}
		switch a.RelType {
		case "m.thread":
			b.thread = a
		case "m.replace":
			if byPos[a.LatestPos] != nil {
				b.replace = a
			}
		case "m.reference":
			b.refs = append(b.refs, a.EventID)
		}
	}
	if nested {
		var replies []storage.Event
		for _, a := range aggs {
			if le := byPos[a.LatestPos]; a.RelType == "m.thread" && le != nil {
				replies = append(replies, *le)
			}
		}
		if len(replies) > 0 {
			if err := s.bundle(ctx, who, [][]storage.Event{replies}, viewerFor, false); err != nil {
				return err
			}
			for i := range replies {
				byPos[replies[i].Pos] = &replies[i]
			}
		}
	}
	now := time.Now().UnixMilli()
	for _, evs := range groups {
		for i := range evs {
			e := &evs[i]
			b := byParent[e.EventID]
			if b == nil || e.IsState() || (b.thread == nil && b.replace == nil && len(b.refs) == 0) {
				continue
			}
			e.Unsigned = appendBundle(e, b.thread, b.replace, b.refs, byPos, now, who)
		}
	}
	return nil
}

// appendBundle renders e's new unsigned object: m.relations first, then the
// stored members.
func appendBundle(e *storage.Event, thread, replace *storage.RelationAggregate, refs []string,
	byPos map[int64]*storage.Event, now int64, who rooms.Viewer) []byte {
	buf := make([]byte, 0, 256+len(e.Unsigned))
	buf = append(buf, `{"m.relations":{`...)
	sep := false
	if t := thread; t != nil {
		buf = append(buf, `"m.thread":{"count":`...)
		buf = strconv.AppendInt(buf, int64(t.Count), 10)
		buf = append(buf, `,"current_user_participated":`...)
		buf = strconv.AppendBool(buf, t.ByViewer > 0 || e.Sender == who.UserID)
		if le := byPos[t.LatestPos]; le != nil {
			buf = append(buf, `,"latest_event":`...)
			buf = rooms.AppendClientEvent(buf, le, now, who)
		}
		buf = append(buf, '}')
		sep = true
	}
	if r := replace; r != nil {
		if sep {
			buf = append(buf, ',')
		}
		buf = append(buf, `"m.replace":`...)
		buf = rooms.AppendClientEvent(buf, byPos[r.LatestPos], now, who)
		sep = true
	}
	if len(refs) > 0 {
		if sep {
			buf = append(buf, ',')
		}
		buf = append(buf, `"m.reference":{"chunk":[`...)
		for j, id := range refs {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"event_id":`...)
			q, _ := json.Marshal(id) // valid JSON for any ID a remote server sends
			buf = append(buf, q...)
			buf = append(buf, '}')
		}
		buf = append(buf, "]}"...)
	}
	buf = append(buf, '}')
	if len(e.Unsigned) > 2 {
		buf = append(buf, ',')
		buf = append(buf, e.Unsigned[1:len(e.Unsigned)-1]...)
	}
	return append(buf, '}')
}
