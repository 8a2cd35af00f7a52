package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/search"
	"github.com/parley-im/parley/storage"
)

// POST /search (the spec's server-side search, room_events only). The
// rules (rooms, visibility, order, paging, limits) live in package search;
// this file parses the body, maps errors and shapes the response.

// searchBody is the request body. Pointers tell absent from zero.
type searchBody struct {
	Categories *struct {
		RoomEvents *struct {
			Term   *string  `json:"search_term"`
			Keys   []string `json:"keys"`
			Filter *struct {
				Limit      *int      `json:"limit"`
				Rooms      *[]string `json:"rooms"`
				NotRooms   []string  `json:"not_rooms"`
				Senders    *[]string `json:"senders"`
				NotSenders []string  `json:"not_senders"`
				Types      *[]string `json:"types"`
				NotTypes   []string  `json:"not_types"`
			} `json:"filter"`
			OrderBy      *string `json:"order_by"`
			EventContext *struct {
				BeforeLimit    *int `json:"before_limit"`
				AfterLimit     *int `json:"after_limit"`
				IncludeProfile bool `json:"include_profile"`
			} `json:"event_context"`
			IncludeState bool `json:"include_state"`
			Groupings    *struct {
				GroupBy []struct {
					Key string `json:"key"`
				} `json:"group_by"`
			} `json:"groupings"`
		} `json:"room_events"`
	} `json:"search_categories"`
}

// searchOptions are the response-shaping options of a request.
type searchOptions struct {
	present        bool // room_events was given
	includeProfile bool
	includeState   bool
	groupBy        []string // "room_id", "sender"
}

// parseSearch turns a request body into a search request: M_BAD_JSON for
// a body of the wrong shape, M_INVALID_PARAM for values out of range.
// Never panics, on any input (FuzzParseSearch).
func parseSearch(body []byte, nextBatch string) (search.Request, searchOptions, error) {
	var b searchBody
	var req search.Request
	var opt searchOptions
	if err := json.Unmarshal(body, &b); err != nil {
		return req, opt, apierr.BadJSON("Request body has the wrong shape: " + err.Error())
	}
	if b.Categories == nil {
		return req, opt, apierr.BadJSON("search_categories is required")
	}
	re := b.Categories.RoomEvents
	if re == nil {
		return req, opt, nil // no category Parley searches: an empty answer
	}
	opt.present = true
	if re.Term == nil {
		return req, opt, apierr.BadJSON("room_events.search_term is required")
	}
	req.Term, req.Keys, req.NextBatch = *re.Term, re.Keys, nextBatch
	if f := re.Filter; f != nil {
		if f.Limit != nil {
			if *f.Limit < 0 {
				return req, opt, apierr.InvalidParam("filter.limit must not be negative")
			}
			req.Limit = *f.Limit
		}
		if f.Rooms != nil {
			req.Rooms = append([]string{}, *f.Rooms...)
		}
		if f.Senders != nil {
			req.Senders = *f.Senders
		}
		if f.Types != nil {
			req.Types = *f.Types
		}
		req.NotRooms, req.NotSenders, req.NotTypes = f.NotRooms, f.NotSenders, f.NotTypes
	}
	if re.OrderBy != nil {
		switch *re.OrderBy {
		case "rank":
			req.ByRank = true
		case "recent":
		default:
			return req, opt, apierr.InvalidParam("order_by must be rank or recent")
		}
	}
	if c := re.EventContext; c != nil {
		req.Context, req.Before, req.After = true, 5, 5 // the spec's defaults
		if c.BeforeLimit != nil {
			req.Before = *c.BeforeLimit
		}
		if c.AfterLimit != nil {
			req.After = *c.AfterLimit
		}
		if req.Before < 0 || req.After < 0 {
			return req, opt, apierr.InvalidParam("event_context limits must not be negative")
		}
		opt.includeProfile = c.IncludeProfile
	}
	opt.includeState = re.IncludeState
	if g := re.Groupings; g != nil {
		for _, k := range g.GroupBy {
			if k.Key != "room_id" && k.Key != "sender" {
				return req, opt, apierr.InvalidParam("groupings.group_by keys must be room_id or sender")
			}
			opt.groupBy = append(opt.groupBy, k.Key)
		}
	}
	return req, opt, nil
}

func (a *API) search(w http.ResponseWriter, r *http.Request, s *session) error {
	var raw json.RawMessage
	if err := a.readJSON(r, &raw); err != nil {
		return err
	}
	req, opt, err := parseSearch(raw, r.URL.Query().Get("next_batch"))
	if err != nil {
		return err
	}
	if !opt.present {
		return writeRaw(w, []byte(`{"search_categories":{}}`))
	}
	res, err := a.searcher.Search(r.Context(), s.UserID, req)
	if errors.Is(err, search.ErrInvalidParam) {
		return apierr.InvalidParam(reason(err))
	}
	if err != nil {
		return err
	}
	// Bundled aggregations (the latest edit, thread summaries), per room.
	byRoom := map[string][]int{}
	var order []string
	for i, h := range res.Hits {
		if byRoom[h.Event.RoomID] == nil {
			order = append(order, h.Event.RoomID)
		}
		byRoom[h.Event.RoomID] = append(byRoom[h.Event.RoomID], i)
	}
	for _, roomID := range order {
		idx := byRoom[roomID]
		evs := make([]storage.Event, len(idx))
		for j, i := range idx {
			evs[j] = res.Hits[i].Event
		}
		if err := a.bundle(r, res.Hits[idx[0]].Access, s, roomID, evs); err != nil {
			return err
		}
		for j, i := range idx {
			res.Hits[i].Event = evs[j]
		}
	}
	now := time.Now().UnixMilli()
	vw := a.viewer(s)
	buf := []byte(`{"search_categories":{"room_events":{"count":`)
	buf = strconv.AppendInt(buf, int64(res.Count), 10)
	buf = append(buf, `,"highlights":`...)
	hl, _ := json.Marshal(nonNil(res.Highlights))
	buf = append(buf, hl...)
	if res.NextBatch != "" {
		buf = append(buf, `,"next_batch":`...)
		buf = strconv.AppendQuote(buf, res.NextBatch)
	}
	buf = append(buf, `,"results":[`...)
	for i := range res.Hits {
		h := &res.Hits[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"rank":`...)
		buf = strconv.AppendFloat(buf, h.Rank, 'g', -1, 64)
		buf = append(buf, `,"result":`...)
		buf = rooms.AppendClientEvent(buf, &h.Event, now, vw)
		if req.Context {
			if buf, err = a.appendSearchContext(r, buf, h, now, vw, opt.includeProfile); err != nil {
				return err
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ']')
	if opt.includeState {
		buf = append(buf, `,"state":{`...)
		for i, roomID := range order {
			state, err := res.Hits[byRoom[roomID][0]].Access.State(r.Context())
			if errors.Is(err, rooms.ErrForbidden) {
				state = nil // an event they may see in a room whose state they may not
			} else if err != nil {
				return err
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendQuote(buf, roomID)
			buf = append(buf, ':')
			buf = append(buf, rooms.ClientEvents(state, now, vw)...)
		}
		buf = append(buf, '}')
	}
	if len(opt.groupBy) > 0 {
		groups := map[string]map[string]any{}
		for _, key := range opt.groupBy {
			g := map[string]any{}
			var keys []string
			ids := map[string][]string{}
			for _, h := range res.Hits {
				k := h.Event.RoomID
				if key == "sender" {
					k = h.Event.Sender
				}
				if ids[k] == nil {
					keys = append(keys, k)
				}
				ids[k] = append(ids[k], h.Event.EventID)
			}
			for n, k := range keys {
				entry := map[string]any{"results": ids[k], "order": n + 1}
				if res.NextBatch != "" {
					entry["next_batch"] = res.NextBatch
				}
				g[k] = entry
			}
			groups[key] = g
		}
		gj, err := json.Marshal(groups)
		if err != nil {
			return err
		}
		buf = append(buf, `,"groups":`...)
		buf = append(buf, gj...)
	}
	buf = append(buf, `}}}`...)
	return writeRaw(w, buf)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// appendSearchContext appends a result's "context": the events around it
// the searcher may see, tokens like /context's, and the senders' profiles
// as the room's member events show them to the searcher.
func (a *API) appendSearchContext(r *http.Request, buf []byte, h *search.Hit, now int64, vw rooms.Viewer, profiles bool) ([]byte, error) {
	ev := &h.Event
	start, end := storage.TopoPoint{Depth: ev.Depth, Pos: ev.Pos - 1}, storage.TopoPoint{Depth: ev.Depth, Pos: ev.Pos}
	if n := len(h.Before); n > 0 {
		start = storage.TopoPoint{Depth: h.Before[n-1].Depth, Pos: h.Before[n-1].Pos - 1}
	}
	if n := len(h.After); n > 0 {
		end = storage.TopoPoint{Depth: h.After[n-1].Depth, Pos: h.After[n-1].Pos}
	}
	buf = append(buf, `,"context":{"start":`...)
	buf = strconv.AppendQuote(buf, topoToken(start))
	buf = append(buf, `,"end":`...)
	buf = strconv.AppendQuote(buf, topoToken(end))
	buf = append(buf, `,"events_before":`...)
	buf = append(buf, rooms.ClientEvents(h.Before, now, vw)...)
	buf = append(buf, `,"events_after":`...)
	buf = append(buf, rooms.ClientEvents(h.After, now, vw)...)
	if profiles {
		seen := map[string]bool{}
		var senders []string
		for _, group := range [][]storage.Event{{*ev}, h.Before, h.After} {
			for _, e := range group {
				if !seen[e.Sender] {
					seen[e.Sender] = true
					senders = append(senders, e.Sender)
				}
			}
		}
		members, err := h.Access.MemberEvents(r.Context(), senders)
		if err != nil {
			return nil, err
		}
		info := map[string]map[string]string{}
		for _, m := range members {
			p := map[string]string{}
			if dn := gjson.GetBytes(m.Client, "content.displayname"); dn.Type == gjson.String {
				p["displayname"] = dn.Str
			}
			if av := gjson.GetBytes(m.Client, "content.avatar_url"); av.Type == gjson.String {
				p["avatar_url"] = av.Str
			}
			info[m.StateKeyOr()] = p
		}
		pj, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		buf = append(buf, `,"profile_info":`...)
		buf = append(buf, pj...)
	}
	return append(buf, '}'), nil
}
