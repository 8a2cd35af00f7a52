package clientapi

import (
	"errors"
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

func parseRoomToken(s string) (int64, error) {
	t, err := inbox.ParseToken(s)
	if err != nil {
		return 0, apierr.InvalidParam("Invalid pagination token")
	}
	return t.Pos, nil
}

// messages pages a room's history, newest first ("b") or oldest first ("f"),
// hiding what history visibility hides.
func (a *API) messages(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	v, err := a.roomAccess(r, s, roomID)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	dir := q.Get("dir")
	if dir != "b" && dir != "f" {
		return apierr.InvalidParam("dir must be b or f")
	}
	limit, err := parseLimit(r, 10, 1000)
	if err != nil {
		return err
	}
	var filter inbox.RoomEventFilter
	if f := q.Get("filter"); f != "" {
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
	var from int64
	if f := q.Get("from"); f != "" {
		if from, err = parseRoomToken(f); err != nil {
			return err
		}
	} else if backwards {
		from = a.n.Pos()
	}
	var to int64
	if t := q.Get("to"); t != "" {
		if to, err = parseRoomToken(t); err != nil {
			return err
		}
	}
	// A user who left reads only up to their leave.
	curPos, gone := v.Departed()
	if gone && backwards && from > curPos {
		from = curPos
	}
	var chunk []storage.Event
	var end int64
	more := true // false once a backwards page reaches the room's first event
	cursor := from
	for tries := 0; tries < 5 && len(chunk) < limit; tries++ {
		var page []storage.Event
		if backwards {
			page, err = a.store.RoomEvents(r.Context(), roomID, cursor+1, to, true, limit)
		} else {
			upper := to
			if gone && (upper == 0 || upper > curPos) {
				upper = curPos
			}
			page, err = a.store.RoomEvents(r.Context(), roomID, cursor, upper, false, limit)
		}
		if err != nil {
			return err
		}
		if len(page) == 0 {
			more = !backwards
			break
		}
		last := page[len(page)-1].Pos
		if backwards {
			cursor, end = last-1, last-1
		} else {
			cursor, end = last, last
		}
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
	buf = strconv.AppendQuote(buf, inbox.RoomToken(from))
	// The spec omits "end" when nothing further is available; paging
	// forwards, the live end of the room can still grow, so keep it there.
	if more && (len(chunk) > 0 || end != 0) {
		buf = append(buf, `,"end":`...)
		buf = strconv.AppendQuote(buf, inbox.RoomToken(end))
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
	before, err := a.store.RoomEvents(r.Context(), roomID, ev.Pos, 0, true, limit/2+limit%2)
	if err != nil {
		return err
	}
	after, err := a.store.RoomEvents(r.Context(), roomID, ev.Pos, 0, false, limit/2)
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
	start, end := ev.Pos-1, ev.Pos
	if len(before) > 0 {
		start = before[len(before)-1].Pos - 1
	}
	if len(after) > 0 {
		end = after[len(after)-1].Pos
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
	buf = strconv.AppendQuote(buf, inbox.RoomToken(start))
	buf = append(buf, `,"end":`...)
	buf = strconv.AppendQuote(buf, inbox.RoomToken(end))
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
	if at := r.URL.Query().Get("at"); at != "" {
		if pos, err = parseRoomToken(at); err != nil {
			return err
		}
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
