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
// all of roomID, as the viewer who (whose user may see what v allows) sees them:
//   - m.thread: the number of replies, the latest reply the viewer may see,
//     and whether the viewer started the thread or replied in it;
//   - m.replace: the latest edit by the original sender, of the original's
//     type (an edit by anyone else is never applied);
//   - m.reference: the IDs of the events that reference it.
//
// It costs two queries for the whole slice, whatever its length: the
// aggregates, then the latest events they name. Events keep their stored
// unsigned members; the new unsigned is a fresh slice, so shared cached
// bytes are never written.
//
// The spec (v1.7 on) has servers bundle the edit, not replace the content:
// clients apply m.new_content themselves.
func (s *Service) Bundle(ctx context.Context, v Viewer, who rooms.Viewer, roomID string, events []storage.Event) error {
	userID := who.UserID
	if len(events) == 0 {
		return nil
	}
	ids := make([]string, 0, len(events))
	for i := range events {
		if !events[i].IsState() {
			ids = append(ids, events[i].EventID)
		}
	}
	aggs, err := s.store.RelationAggregates(ctx, roomID, userID, ids)
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
	for i := range latest {
		if v.CanSee(&latest[i]) {
			byPos[latest[i].Pos] = &latest[i]
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
	now := time.Now().UnixMilli()
	for i := range events {
		e := &events[i]
		b := byParent[e.EventID]
		if b == nil || e.IsState() || (b.thread == nil && b.replace == nil && len(b.refs) == 0) {
			continue
		}
		buf := make([]byte, 0, 256+len(e.Unsigned))
		buf = append(buf, `{"m.relations":{`...)
		sep := false
		if t := b.thread; t != nil {
			buf = append(buf, `"m.thread":{"count":`...)
			buf = strconv.AppendInt(buf, int64(t.Count), 10)
			buf = append(buf, `,"current_user_participated":`...)
			buf = strconv.AppendBool(buf, t.ByViewer > 0 || e.Sender == userID)
			if le := byPos[t.LatestPos]; le != nil {
				buf = append(buf, `,"latest_event":`...)
				buf = rooms.AppendClientEvent(buf, le, now, who)
			}
			buf = append(buf, '}')
			sep = true
		}
		if r := b.replace; r != nil {
			if sep {
				buf = append(buf, ',')
			}
			buf = append(buf, `"m.replace":`...)
			buf = rooms.AppendClientEvent(buf, byPos[r.LatestPos], now, who)
			sep = true
		}
		if len(b.refs) > 0 {
			if sep {
				buf = append(buf, ',')
			}
			buf = append(buf, `"m.reference":{"chunk":[`...)
			for j, id := range b.refs {
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
		e.Unsigned = append(buf, '}')
	}
	return nil
}
