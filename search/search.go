// Package search owns /search over room events: which rooms a search looks
// in, which of their events the searcher may see, the order and paging of
// results, their context, and the limits on a request. Who may read what is
// decided by rooms.ReadAccess (through ReadAccesses), the rule /messages
// follows, so a search can never show an event /messages would hide. What
// matches a term is decided by storage/searchtext; the index is storage's.
package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/searchtext"
)

// ErrInvalidParam is wrapped by every refusal of a request's values.
var ErrInvalidParam = errors.New("invalid search parameter")

const (
	// DefaultLimit is the page size when the filter sets none (Synapse's).
	DefaultLimit = 10
	// MaxLimit caps a page: each result may carry context queries.
	MaxLimit = 100
	// MaxContext caps event_context's before_limit and after_limit.
	MaxContext = 20
	// MaxTermBytes caps search_term.
	MaxTermBytes = 1000
	// CountCap bounds the events counted for "count": past it the count
	// says "at least this many" (the spec calls it approximate), so a term
	// found everywhere cannot make every page scan the whole index. At
	// 1,000 the count was most of a search's cost for a common character
	// over 1,000,000 messages (docs/benchmarks.md).
	CountCap = 250
	// maxPasses bounds the index queries one page makes when history
	// visibility hides many of the matches.
	maxPasses = 5
)

// Store is what search reads. *storage.Store implements it.
type Store interface {
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)
	SearchEvents(ctx context.Context, q storage.SearchQuery) ([]storage.SearchHit, error)
	EventsAt(ctx context.Context, positions []int64) ([]storage.Event, error)
	RoomEventsTopo(ctx context.Context, q storage.TopoQuery) ([]storage.Event, error)
}

// Reader decides what a user may read. *rooms.Service implements it.
type Reader interface {
	ReadAccesses(ctx context.Context, userID string, roomIDs []string) (map[string]*rooms.Access, error)
}

// Indexer fills the index behind the room writer. *rooms.Service
// implements it.
type Indexer interface {
	// SearchIndexed returns once every event committed before the call is
	// in the index.
	SearchIndexed(ctx context.Context) error
}

// Service runs searches. It is safe for concurrent use.
type Service struct {
	// Static after New.
	store   Store
	reader  Reader
	indexer Indexer
}

// New returns a Service over store, with reader's access rules, that waits
// for indexer's backlog before each search.
func New(store Store, reader Reader, indexer Indexer) *Service {
	return &Service{store: store, reader: reader, indexer: indexer}
}

// Request is one room_events search, parsed from the request body.
type Request struct {
	Term string
	// Keys are the spec's content keys to search (content.body,
	// content.name, content.topic); empty: all three.
	Keys []string
	// Rooms limits the search to these rooms (nil: every room the user has
	// a membership in); NotRooms leaves rooms out.
	Rooms, NotRooms     []string
	Senders, NotSenders []string
	Types, NotTypes     []string
	ByRank              bool // order_by "rank"; otherwise "recent"
	Limit               int  // 0: DefaultLimit
	NextBatch           string
	Before, After       int  // event_context limits; 0 with Context false: none
	Context             bool // event_context was given
}

// Hit is one result: the event and the access under which it was found.
type Hit struct {
	Event  storage.Event
	Rank   float64
	Access *rooms.Access
	// Before and After are its context, newest first and oldest first,
	// filled when the request asked for context.
	Before, After []storage.Event
}

// Result is one page of results.
type Result struct {
	Hits       []Hit
	Count      int
	Highlights []string
	NextBatch  string // "" when there is nothing more
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidParam, fmt.Sprintf(format, args...))
}

// Search runs req for userID.
func (s *Service) Search(ctx context.Context, userID string, req Request) (*Result, error) {
	q, term, err := s.prepare(req)
	if err != nil {
		return nil, err
	}
	res := &Result{Highlights: term.Highlights}
	if term.Empty() {
		return res, nil // only punctuation: nothing can match
	}
	// What the user sent before searching must be findable. When the
	// writer is too busy to index now, search what the index holds.
	if err := s.indexer.SearchIndexed(ctx); err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	accs, err := s.rooms(ctx, userID, req)
	if err != nil {
		return nil, err
	}
	for id, a := range accs {
		q.Rooms = append(q.Rooms, storage.SearchRoom{RoomID: id, MaxPos: maxPos(a)})
	}
	slices.SortFunc(q.Rooms, func(a, b storage.SearchRoom) int { return strings.Compare(a.RoomID, b.RoomID) })
	if len(q.Rooms) == 0 {
		return res, nil
	}
	limit := q.Limit
	more := false
	for pass := 0; pass < maxPasses && len(res.Hits) < limit; pass++ {
		need := limit - len(res.Hits)
		q.Limit = need + 1 + need/2 // room for a few matches visibility hides
		raw, err := s.store.SearchEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		evs, err := s.load(ctx, raw)
		if err != nil {
			return nil, err
		}
		more = len(raw) == q.Limit // a full batch: the index may hold more
		for _, h := range raw {
			if len(res.Hits) == limit {
				more = true // this row is left for the next page
				break
			}
			// The cursor moves past every row looked at, seen or hidden.
			q.Offset++
			q.Before = h.Pos
			e, ok := evs[h.Pos]
			if a := accs[h.RoomID]; ok && a != nil && a.CanSee(&e) {
				res.Hits = append(res.Hits, Hit{Event: e, Rank: h.Rank, Access: a})
			}
		}
		if !more {
			break
		}
	}
	q.Limit = limit
	if more {
		if req.ByRank {
			res.NextBatch = "r" + strconv.Itoa(q.Offset)
		} else {
			res.NextBatch = "p" + strconv.FormatInt(q.Before, 10)
		}
	}
	if res.Count, err = s.count(ctx, q, accs, req, len(res.Hits), more); err != nil {
		return nil, err
	}
	if req.Context && (req.Before > 0 || req.After > 0) {
		for i := range res.Hits {
			if err := s.context(ctx, &res.Hits[i], req.Before, req.After); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// prepare checks req and turns it into an index query without rooms.
func (s *Service) prepare(req Request) (storage.SearchQuery, searchtext.Term, error) {
	var q storage.SearchQuery
	if strings.TrimSpace(req.Term) == "" {
		return q, searchtext.Term{}, invalid("search_term must not be empty")
	}
	if len(req.Term) > MaxTermBytes {
		return q, searchtext.Term{}, invalid("search_term is longer than %d bytes", MaxTermBytes)
	}
	term := searchtext.ParseTerm(req.Term)
	if len(term.Tokens) > searchtext.MaxTermTokens {
		return q, searchtext.Term{}, invalid("search_term has more than %d words and character pairs", searchtext.MaxTermTokens)
	}
	q.Tokens, q.Phrases = term.Tokens, term.Phrases
	keys := req.Keys
	if len(keys) == 0 {
		keys = []string{"content.body", "content.name", "content.topic"}
	}
	for _, k := range keys {
		typ, ok := storage.SearchKeyType(k)
		if !ok {
			return q, term, invalid("unknown key %q: use content.body, content.name or content.topic", k)
		}
		// The filter's types and not_types (with the spec's * wildcard)
		// only ever select among the three indexed types, so they are
		// applied here, not in the query.
		if (len(req.Types) == 0 || slices.ContainsFunc(req.Types, func(p string) bool { return typeMatches(p, typ) })) &&
			!slices.ContainsFunc(req.NotTypes, func(p string) bool { return typeMatches(p, typ) }) && !slices.Contains(q.Types, typ) {
			q.Types = append(q.Types, typ)
		}
	}
	if len(q.Types) == 0 {
		q.Types = []string{"-"} // the filter excludes every key: match nothing
	}
	q.Senders, q.NotSenders = req.Senders, req.NotSenders
	q.ByRank = req.ByRank
	switch {
	case req.Limit < 0:
		return q, term, invalid("filter.limit must not be negative")
	case req.Limit == 0:
		q.Limit = DefaultLimit
	default:
		q.Limit = min(req.Limit, MaxLimit)
	}
	if req.Before < 0 || req.After < 0 {
		return q, term, invalid("event_context limits must not be negative")
	}
	if t := req.NextBatch; t != "" {
		n, err := strconv.ParseInt(t[1:], 10, 64)
		switch {
		case err != nil || n < 0:
			return q, term, invalid("bad next_batch")
		case t[0] == 'r' && req.ByRank && n <= math.MaxInt32:
			q.Offset = int(n)
		case t[0] == 'p' && !req.ByRank && n > 0:
			q.Before = n
		default:
			return q, term, invalid("next_batch is not from a search with this order_by")
		}
	}
	return q, term, nil
}

// typeMatches applies a filter's event type pattern, where * matches any
// run of characters (the spec's filter wildcard).
func typeMatches(pattern, typ string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == typ
	}
	if !strings.HasPrefix(typ, parts[0]) {
		return false
	}
	rest := typ[len(parts[0]):]
	for i, p := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(rest, p)
		}
		j := strings.Index(rest, p)
		if j < 0 {
			return false
		}
		rest = rest[j+len(p):]
	}
	return true
}

// rooms returns the access of every room the search may look in: the
// rooms the user has a membership in (or the filter's rooms), less the
// filter's not_rooms, less those ReadAccess refuses (never a member, or
// left and forgotten). A world_readable room is searched when named in
// filter.rooms, as /messages reads it.
func (s *Service) rooms(ctx context.Context, userID string, req Request) (map[string]*rooms.Access, error) {
	ids := req.Rooms
	if ids == nil {
		ms, err := s.store.UserMemberships(ctx, userID, "")
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			ids = append(ids, m.RoomID)
		}
	}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(req.NotRooms, id) })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return s.reader.ReadAccesses(ctx, userID, ids)
}

// maxPos bounds a room's matches by what the user may read at most: up to
// their leave if they left. The exact rule is applied to each match after
// (CanSee); this only keeps the index from returning what it would drop.
func maxPos(a *rooms.Access) int64 {
	if a.WorldReadable() {
		return 0
	}
	if pos, gone := a.Departed(); gone {
		return max(pos, 1)
	}
	return 0
}

// load reads the events of raw by position.
func (s *Service) load(ctx context.Context, raw []storage.SearchHit) (map[int64]storage.Event, error) {
	pos := make([]int64, len(raw))
	for i, h := range raw {
		pos[i] = h.Pos
	}
	evs, err := s.store.EventsAt(ctx, pos)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]storage.Event, len(evs))
	for _, e := range evs {
		out[e.Pos] = e
	}
	return out, nil
}

// count estimates how many events the whole search finds: exactly when
// this page holds them all, else by counting the visible matches up to
// CountCap. Events in the index are never member events, so visibility
// depends on the position alone.
func (s *Service) count(ctx context.Context, q storage.SearchQuery, accs map[string]*rooms.Access, req Request, onPage int, more bool) (int, error) {
	if !more && req.NextBatch == "" {
		return onPage, nil
	}
	q.ByRank, q.Before, q.Offset, q.Limit, q.PositionsOnly = false, 0, 0, CountCap, true
	raw, err := s.store.SearchEvents(ctx, q)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range raw {
		e := storage.Event{Pos: h.Pos, RoomID: h.RoomID, EventID: h.EventID, Type: "m.room.message"}
		if a := accs[h.RoomID]; a != nil && a.CanSee(&e) {
			n++
		}
	}
	return n, nil
}

// context loads the events around a hit that the searcher may see, in the
// room's topological order like /context.
func (s *Service) context(ctx context.Context, h *Hit, before, after int) error {
	e := &h.Event
	limitPos := int64(math.MaxInt64)
	if pos, gone := h.Access.Departed(); gone && !h.Access.WorldReadable() {
		limitPos = pos
	}
	if before > 0 {
		q := storage.TopoQuery{RoomID: e.RoomID, Backwards: true, MinPos: math.MinInt64, MaxPos: limitPos, Limit: min(before, MaxContext),
			From: storage.TopoPoint{Depth: e.Depth, Pos: e.Pos - 1}, To: storage.TopoMin}
		evs, err := s.store.RoomEventsTopo(ctx, q)
		if err != nil {
			return err
		}
		h.Before = h.Access.Filter(evs)
	}
	if after > 0 {
		q := storage.TopoQuery{RoomID: e.RoomID, MinPos: math.MinInt64, MaxPos: limitPos, Limit: min(after, MaxContext),
			From: storage.TopoPoint{Depth: e.Depth, Pos: e.Pos}, To: storage.TopoMax}
		evs, err := s.store.RoomEventsTopo(ctx, q)
		if err != nil {
			return err
		}
		h.After = h.Access.Filter(evs)
	}
	return nil
}
