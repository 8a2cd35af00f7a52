package clientapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/relations"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Relations and threads (spec: "Relationships between events",
// "Threading"). The rules live in package relations; these handlers parse
// the query and render. Tokens are room tokens, as /messages gives, so a
// client may start /relations from a /messages token.

// mountRelations adds the v1 relations and threads routes; prefix is the
// full client path prefix.
func (a *API) mountRelations(r chi.Router, prefix string) {
	r.Get(prefix+"/rooms/{roomId}/relations/{eventId}", a.authed(a.relations))
	r.Get(prefix+"/rooms/{roomId}/relations/{eventId}/{relType}", a.authed(a.relations))
	r.Get(prefix+"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", a.authed(a.relations))
	r.Get(prefix+"/rooms/{roomId}/threads", a.authed(a.threads))
}

// relationsError maps the relations package's errors to the spec's.
func relationsError(err error) error {
	switch {
	case errors.Is(err, relations.ErrNotFound):
		return apierr.NotFound("Event not found")
	case errors.Is(err, relations.ErrInvalidParam):
		return apierr.InvalidParam(err.Error())
	}
	return err
}

func (a *API) relations(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	qs := r.URL.Query()
	q := relations.Query{RelType: param(r, "relType"), EventType: param(r, "eventType")}
	switch qs.Get("dir") {
	case "", "b":
		q.Backwards = true
	case "f":
	default:
		return apierr.InvalidParam("dir must be b or f")
	}
	var err error
	if q.Limit, err = parseLimit(r, relations.DefaultLimit, relations.MaxLimit); err != nil {
		return err
	}
	if q.From, err = a.roomTokenParam(qs.Get("from")); err != nil {
		return err
	}
	if q.To, err = a.roomTokenParam(qs.Get("to")); err != nil {
		return err
	}
	switch qs.Get("recurse") {
	case "", "false":
	case "true":
		q.Recurse = true
	default:
		return apierr.InvalidParam("recurse must be true or false")
	}
	acc, page, err := a.rel.Relations(r.Context(), s.UserID, roomID, param(r, "eventId"), q)
	if err != nil {
		return relationsError(err)
	}
	if err := a.rel.Bundle(r.Context(), acc, a.viewer(s), roomID, page.Events); err != nil {
		return err
	}
	buf := []byte(`{"chunk":`)
	buf = append(buf, rooms.ClientEvents(page.Events, time.Now().UnixMilli(), a.viewer(s))...)
	if page.HasNext {
		buf = append(buf, `,"next_batch":`...)
		buf = strconv.AppendQuote(buf, inbox.RoomToken(page.Next))
	}
	if f := qs.Get("from"); f != "" {
		buf = append(buf, `,"prev_batch":`...)
		buf = strconv.AppendQuote(buf, inbox.RoomToken(q.From))
	}
	if qs.Has("recurse") { // the spec: present exactly when the client gave recurse
		buf = append(buf, `,"recursion_depth":`...)
		buf = strconv.AppendInt(buf, int64(page.Depth), 10)
	}
	return writeRaw(w, append(buf, '}'))
}

func (a *API) threads(w http.ResponseWriter, r *http.Request, s *session) error {
	qs := r.URL.Query()
	var inc relations.Include
	switch qs.Get("include") {
	case "", "all":
	case "participated":
		inc = relations.IncludeParticipated
	default:
		return apierr.InvalidParam("include must be all or participated")
	}
	limit, err := parseLimit(r, relations.DefaultLimit, relations.MaxLimit)
	if err != nil {
		return err
	}
	from, err := a.roomTokenParam(qs.Get("from"))
	if err != nil {
		return err
	}
	page, err := a.rel.Threads(r.Context(), a.viewer(s), param(r, "roomId"), inc, from, limit)
	if err != nil {
		return relationsError(err)
	}
	buf := []byte(`{"chunk":`)
	buf = append(buf, rooms.ClientEvents(page.Roots, time.Now().UnixMilli(), a.viewer(s))...)
	if page.HasNext {
		buf = append(buf, `,"next_batch":`...)
		buf = strconv.AppendQuote(buf, inbox.RoomToken(page.Next))
	}
	return writeRaw(w, append(buf, '}'))
}

// bundle adds bundled aggregations to events the caller may read in
// roomID, for /event, /context and /messages: one call per response.
func (a *API) bundle(r *http.Request, acc *rooms.Access, s *session, roomID string, events []storage.Event) error {
	if a.rel == nil {
		return nil
	}
	return a.rel.Bundle(r.Context(), acc, a.viewer(s), roomID, events)
}
