package clientapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// roomAccess loads what the caller may read in a room; rooms.ReadAccess
// holds the rules (who may read events, and which state).
func (a *API) roomAccess(r *http.Request, s *session, roomID string) (*rooms.Access, error) {
	return a.rooms.ReadAccess(r.Context(), roomID, s.UserID)
}

// requireJoined refuses callers not joined to the room now, for the
// endpoints the spec reserves to current members.
func (a *API) requireJoined(r *http.Request, s *session, roomID string) error {
	joined, err := a.rooms.Joined(r.Context(), roomID, s.UserID)
	if err == nil && !joined {
		return apierr.Forbidden("You are not in this room")
	}
	return err
}

func (a *API) viewer(s *session) rooms.Viewer {
	return rooms.Viewer{UserID: s.UserID, DeviceID: s.DeviceID}
}

func parseLimit(r *http.Request, def, max int) (int, error) {
	q := r.URL.Query().Get("limit")
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 0 {
		return 0, apierr.InvalidParam("limit must be a non-negative integer")
	}
	if n > max {
		n = max
	}
	return n, nil
}

// roomTokenParam reads an optional token as a stream position; 0 (no
// bound) when s is empty or a token of another store epoch (pageParam).
func (a *API) roomTokenParam(s string) (int64, error) {
	t, ok, err := a.pageParam(s)
	if err != nil || !ok {
		return 0, err
	}
	return t.streamPos(), nil
}

// messages pages a room's history, newest first ("b") or oldest first ("f"),
// hiding what history visibility hides.
func (a *API) messages(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	v, err := a.roomAccess(r, s, roomID)
	if err != nil {
		return err
	}
	q0 := func(r *http.Request, k string) string { return r.URL.Query().Get(k) }
	dir := q0(r, "dir")
	if dir != "b" && dir != "f" {
		return apierr.InvalidParam("dir must be b or f")
	}
	limit, err := parseLimit(r, 10, 1000)
	if err != nil {
		return err
	}
	var filter inbox.RoomEventFilter
	if f := q0(r, "filter"); f != "" {
		parsed, err := inbox.ParseFilter([]byte(`{"room":{"timeline":` + f + `}}`))
		if err != nil {
			return apierr.BadJSON("Invalid filter")
		}
		filter = parsed.Room.Timeline
		if filter.Limit > 0 && filter.Limit < limit {
			limit = filter.Limit
		}
	}
	backwards := dir == "b"
	// Pages follow the room's topological order, (depth, stream position).
	q := newTopoQuery(roomID, backwards, limit)
	start := ""
	from, hasFrom, err := a.pageParam(q0(r, "from"))
	if err != nil {
		return err
	}
	if hasFrom {
		from.applyFrom(&q)
		start = q0(r, "from")
	} else if backwards {
		pos := a.n.Pos()
		q.MaxPos = pos
		start = inbox.RoomToken(pos)
	} else {
		// The room's beginning; depths start at 1, so depth 0 is before all.
		start = topoToken(storage.TopoPoint{Depth: 0, Pos: math.MinInt64})
	}
	if to, hasTo, err := a.pageParam(q0(r, "to")); err != nil {
		return err
	} else if hasTo {
		to.applyTo(&q)
	}
	// A user who left reads only up to their leave.
	if curPos, gone := v.Departed(); gone {
		q.MaxPos = min(q.MaxPos, curPos)
	}
	var chunk []storage.Event
	var end storage.TopoPoint
	hasEnd := false
	more := true // false once a backwards page reaches the room's first event
	fill := a.newFiller(r.Context())
	defer fill.done()
	for tries := 0; tries < 5 && len(chunk) < limit; tries++ {
		// History from before this server joined comes from the room's
		// other servers, in either direction: paging forwards from the
		// beginning crosses the same gaps.
		page, err := fill.read(r.Context(), roomID, q, nil)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			more = !backwards
			break
		}
		last := page[len(page)-1]
		if backwards {
			end = storage.TopoPoint{Depth: last.Depth, Pos: last.Pos - 1}
		} else {
			end = storage.TopoPoint{Depth: last.Depth, Pos: last.Pos}
		}
		q.From, hasEnd = end, true
		for _, e := range v.Filter(page) {
			if filter.Allows(e.Type, e.Sender) && len(chunk) < limit {
				chunk = append(chunk, e)
			}
		}
		if len(page) < limit {
			more = !backwards
			break
		}
	}
	var members []storage.Event
	if filter.LazyLoadMembers && len(chunk) > 0 {
		senders := make([]string, 0, len(chunk))
		seen := map[string]bool{}
		for _, e := range chunk {
			if !seen[e.Sender] {
				seen[e.Sender] = true
				senders = append(senders, e.Sender)
			}
		}
		// Clipped like every state read: a leaver gets the members as of
		// their leave, a user who never joined gets none.
		if members, err = v.MemberEvents(r.Context(), senders); err != nil {
			return err
		}
	}
	if err := a.bundle(r, v, s, roomID, chunk); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	w.Header().Set("Content-Type", "application/json")
	buf := []byte(`{"start":`)
	buf = strconv.AppendQuote(buf, start)
	// The spec omits "end" when nothing further is available; paging
	// forwards, the live end of the room can still grow, so keep it there.
	if more && hasEnd {
		buf = append(buf, `,"end":`...)
		buf = strconv.AppendQuote(buf, topoToken(end))
	}
	buf = append(buf, `,"chunk":`...)
	buf = append(buf, rooms.ClientEvents(chunk, now, a.viewer(s))...)
	buf = append(buf, `,"state":`...)
	buf = append(buf, rooms.ClientEvents(members, now, a.viewer(s))...)
	buf = append(buf, '}')
	return writeRaw(w, buf)
}

func (a *API) loadVisibleEvent(r *http.Request, s *session, roomID, eventID string) (*rooms.Access, storage.Event, error) {
	v, err := a.roomAccess(r, s, roomID)
	if errors.Is(err, rooms.ErrForbidden) {
		// The spec answers an event one may not read with 404 only.
		return nil, storage.Event{}, apierr.NotFound("Event not found")
	}
	if err != nil {
		return nil, storage.Event{}, err
	}
	ev, err := a.store.GetEvent(r.Context(), eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomID != roomID || !v.CanSee(&ev))) {
		return nil, storage.Event{}, apierr.NotFound("Event not found")
	}
	return v, ev, err
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	v, ev, err := a.loadVisibleEvent(r, s, param(r, "roomId"), param(r, "eventId"))
	if err != nil {
		return err
	}
	one := []storage.Event{ev}
	if err := a.bundle(r, v, s, ev.RoomID, one); err != nil {
		return err
	}
	ev = one[0]
	return writeRaw(w, rooms.AppendClientEvent(nil, &ev, time.Now().UnixMilli(), a.viewer(s)))
}

func (a *API) eventContext(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	v, ev, err := a.loadVisibleEvent(r, s, roomID, param(r, "eventId"))
	if err != nil {
		return err
	}
	limit, err := parseLimit(r, 10, 100)
	if err != nil {
		return err
	}
	// Around the event in topological order, (depth, stream position).
	at := storage.TopoPoint{Depth: ev.Depth, Pos: ev.Pos}
	bq := newTopoQuery(roomID, true, limit/2+limit%2)
	bq.From = storage.TopoPoint{Depth: ev.Depth, Pos: ev.Pos - 1}
	// The neighbours may sit in a gap of history this server lacks (the
	// event is the oldest held): they are fetched as /messages does.
	fill := a.newFiller(r.Context())
	defer fill.done()
	before, err := fill.read(r.Context(), roomID, bq, &ev)
	if err != nil {
		return err
	}
	aq := newTopoQuery(roomID, false, limit/2)
	aq.From = at
	after, err := fill.read(r.Context(), roomID, aq, nil)
	if err != nil {
		return err
	}
	before, after = v.Filter(before), v.Filter(after)
	// The event may be visible (one's own invite or ban is) while the state
	// around it is not: the state is clipped like every state read.
	state, err := v.StateAt(r.Context(), ev.Pos)
	if err != nil {
		return err
	}
	// One bundling pass for the event and its neighbours.
	all := make([]storage.Event, 0, 1+len(before)+len(after))
	all = append(append(append(all, ev), before...), after...)
	if err := a.bundle(r, v, s, roomID, all); err != nil {
		return err
	}
	ev, before, after = all[0], all[1:1+len(before)], all[1+len(before):]
	start, end := storage.TopoPoint{Depth: ev.Depth, Pos: ev.Pos - 1}, at
	if len(before) > 0 {
		b := before[len(before)-1]
		start = storage.TopoPoint{Depth: b.Depth, Pos: b.Pos - 1}
	}
	if len(after) > 0 {
		e := after[len(after)-1]
		end = storage.TopoPoint{Depth: e.Depth, Pos: e.Pos}
	}
	now := time.Now().UnixMilli()
	vw := a.viewer(s)
	buf := []byte(`{"event":`)
	buf = rooms.AppendClientEvent(buf, &ev, now, vw)
	buf = append(buf, `,"events_before":`...)
	buf = append(buf, rooms.ClientEvents(before, now, vw)...)
	buf = append(buf, `,"events_after":`...)
	buf = append(buf, rooms.ClientEvents(after, now, vw)...)
	buf = append(buf, `,"state":`...)
	buf = append(buf, rooms.ClientEvents(state, now, vw)...)
	buf = append(buf, `,"start":`...)
	buf = strconv.AppendQuote(buf, topoToken(start))
	buf = append(buf, `,"end":`...)
	buf = strconv.AppendQuote(buf, topoToken(end))
	buf = append(buf, '}')
	return writeRaw(w, buf)
}

func (a *API) members(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	v, err := a.roomAccess(r, s, roomID)
	if err != nil {
		return err
	}
	var pos int64 = rooms.StateCurrent // the latest state the caller may read
	if at, ok, err := a.pageParam(r.URL.Query().Get("at")); err != nil {
		return err
	} else if ok {
		pos = at.streamPos()
	}
	state, err := v.StateAt(r.Context(), pos)
	if err != nil {
		return err
	}
	want, notWant := r.URL.Query().Get("membership"), r.URL.Query().Get("not_membership")
	var out []storage.Event
	for _, e := range state {
		if e.Type != "m.room.member" || (want != "" && e.Membership != want) || (notWant != "" && e.Membership == notWant) {
			continue
		}
		out = append(out, e)
	}
	buf := append([]byte(`{"chunk":`), rooms.ClientEvents(out, time.Now().UnixMilli(), a.viewer(s))...)
	return writeRaw(w, append(buf, '}'))
}

// joinedMembers answers only current members, as the spec says.
func (a *API) joinedMembers(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := a.roomAccess(r, s, param(r, "roomId"))
	if err != nil {
		return err
	}
	if !v.Joined() {
		return apierr.Forbidden("You are not in this room")
	}
	state, err := v.State(r.Context())
	if err != nil {
		return err
	}
	joined := map[string]map[string]any{}
	for _, e := range state {
		if e.Type == "m.room.member" && e.Membership == "join" {
			m := map[string]any{}
			if dn := gjson.GetBytes(e.Client, "content.displayname"); dn.Type == gjson.String {
				m["display_name"] = dn.String()
			}
			if av := gjson.GetBytes(e.Client, "content.avatar_url"); av.Type == gjson.String {
				m["avatar_url"] = av.String()
			}
			joined[e.StateKeyOr()] = m
		}
	}
	return writeJSON(w, map[string]any{"joined": joined})
}

func (a *API) getAllState(w http.ResponseWriter, r *http.Request, s *session) error {
	state, err := a.rooms.ReadableState(r.Context(), param(r, "roomId"), s.UserID)
	if err != nil {
		return err
	}
	return writeRaw(w, rooms.ClientEvents(state, time.Now().UnixMilli(), a.viewer(s)))
}

func (a *API) getState(w http.ResponseWriter, r *http.Request, s *session) error {
	state, err := a.rooms.ReadableState(r.Context(), param(r, "roomId"), s.UserID)
	if err != nil {
		return err
	}
	typ, key := param(r, "eventType"), param(r, "stateKey")
	for _, e := range state {
		if e.Type == typ && e.StateKeyOr() == key {
			if r.URL.Query().Get("format") == "event" {
				return writeRaw(w, rooms.AppendClientEvent(nil, &e, time.Now().UnixMilli(), a.viewer(s)))
			}
			return writeRaw(w, []byte(gjson.GetBytes(e.Client, "content").Raw))
		}
	}
	return apierr.NotFound("Event not found")
}

func (a *API) roomAliases(w http.ResponseWriter, r *http.Request, s *session) error {
	aliases, err := a.directory.RoomAliases(r.Context(), s.UserID, param(r, "roomId"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"aliases": aliases})
}
