// Package relations serves event relations (Matrix client-server API,
// "Relationships between events"): the /relations and /threads listings
// and the bundled aggregations (unsigned["m.relations"]) that /event,
// /context and /messages attach to the events they return.
//
// It reads the relations index the writer fills (storage, schema 029) and
// never writes. Who may read what is decided by rooms.ReadAccess, the one
// access rule: the parent must be readable, and only the events the caller
// may see under history visibility are listed or bundled.
package relations

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Errors. Each is wrapped with a reason; clientapi maps them to Matrix errors.
var (
	// ErrNotFound: the parent event does not exist or the caller may not
	// see it. The spec answers both alike, so events cannot be probed.
	ErrNotFound = errors.New("not found")
	// ErrInvalidParam: a query parameter is out of range.
	ErrInvalidParam = errors.New("invalid parameter")
)

// Limits.
const (
	// DefaultLimit is the page size when the client names none.
	DefaultLimit = 50
	// MaxLimit caps a page, so one request reads a bounded number of rows.
	MaxLimit = 1000
	// MaxDepth is how far recurse=true follows relations of relations, as
	// the spec suggests (Synapse uses 3 too): a chain of relations costs
	// at most this many index hops.
	MaxDepth = 3
)

// Store is what relations reads. *storage.Store implements it.
type Store interface {
	GetEvent(ctx context.Context, eventID string) (storage.Event, error)
	EventPositions(ctx context.Context, eventIDs []string) (map[string]storage.Event, error)
	EventsAt(ctx context.Context, positions []int64) ([]storage.Event, error)
	Relations(ctx context.Context, q storage.RelationQuery) ([]storage.Event, error)
	RelationAggregates(ctx context.Context, viewer string, parentIDs []string) ([]storage.RelationAggregate, error)
	MembershipHistories(ctx context.Context, userID string, roomIDs []string) (members, visibility map[string][]storage.Event, err error)
	Threads(ctx context.Context, roomID, participant string, before int64, limit int) ([]storage.Thread, error)
}

// Reader decides what a user may read in a room. *rooms.Service implements it.
type Reader interface {
	ReadAccess(ctx context.Context, roomID, userID string) (*rooms.Access, error)
}

// Service answers relation reads. It is safe for concurrent use.
type Service struct {
	// Static after New.
	store  Store
	reader Reader
}

// New returns a Service reading store, with reader's access rules.
func New(store Store, reader Reader) *Service {
	return &Service{store: store, reader: reader}
}

// Query is a /relations request, with pagination tokens already turned
// into positions by the caller. A position token T sits just after the
// event at T, as in /messages: paging backwards from T starts at T itself,
// forwards from T starts after it.
type Query struct {
	RelType   string
	EventType string
	Backwards bool
	From, To  int64 // 0: no bound
	Limit     int   // 0: DefaultLimit
	Recurse   bool
}

// Page is one page of relations.
type Page struct {
	Events []storage.Event // visible to the caller, in the order asked
	// Next is the token for the following page; HasNext is false at the end.
	Next    int64
	HasNext bool
	Depth   int // the recursion depth applied (1 without recurse)
}

// Relations lists the events relating to eventID in roomID that userID may
// see. The parent itself must be visible to them, else ErrNotFound.
func (s *Service) Relations(ctx context.Context, userID, roomID, eventID string, q Query) (*rooms.Access, Page, error) {
	if q.Limit < 0 {
		return nil, Page{}, fmt.Errorf("%w: limit must not be negative", ErrInvalidParam)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	acc, err := s.parent(ctx, userID, roomID, eventID)
	if err != nil {
		return nil, Page{}, err
	}
	sq := storage.RelationQuery{RoomID: roomID, ParentID: eventID, RelType: q.RelType, EventType: q.EventType,
		Depth: 1, Backwards: q.Backwards, Limit: q.Limit}
	if q.Recurse {
		sq.Depth = MaxDepth
	}
	if q.Backwards {
		if q.From > 0 {
			sq.Before = q.From + 1
		}
		sq.After = q.To
	} else {
		sq.After = q.From
		if q.To > 0 {
			sq.Before = q.To + 1
		}
	}
	evs, err := s.store.Relations(ctx, sq)
	if err != nil {
		return nil, Page{}, err
	}
	p := Page{Depth: sq.Depth}
	if len(evs) == q.Limit {
		p.HasNext = true
		p.Next = evs[len(evs)-1].Pos
		if q.Backwards {
			p.Next--
		}
	}
	p.Events = acc.Filter(evs)
	return acc, p, nil
}

// parent loads the caller's access to roomID and checks they may see
// eventID there; any refusal is ErrNotFound, as the spec asks.
func (s *Service) parent(ctx context.Context, userID, roomID, eventID string) (*rooms.Access, error) {
	acc, err := s.reader.ReadAccess(ctx, roomID, userID)
	if errors.Is(err, rooms.ErrForbidden) {
		return nil, fmt.Errorf("%w: event not found", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	ev, err := s.store.GetEvent(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomID != roomID || !acc.CanSee(&ev))) {
		return nil, fmt.Errorf("%w: event not found", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return acc, nil
}

// Include selects the threads /threads lists.
type Include int

const (
	IncludeAll          Include = iota // every thread in the room
	IncludeParticipated                // threads the caller started or replied to
)

// ThreadPage is one page of thread roots, newest activity first.
type ThreadPage struct {
	Roots   []storage.Event // visible roots, each with its bundled aggregations
	Next    int64           // the token for the following page, when HasNext
	HasNext bool
}

// Threads lists roomID's thread roots for the viewer who, newest activity first,
// with activity before the position from (0: from the newest). A caller
// who may not read the room gets rooms.ErrForbidden.
func (s *Service) Threads(ctx context.Context, who rooms.Viewer, roomID string, inc Include, from int64, limit int) (ThreadPage, error) {
	if limit < 0 {
		return ThreadPage{}, fmt.Errorf("%w: limit must not be negative", ErrInvalidParam)
	}
	if limit == 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	userID := who.UserID
	acc, err := s.reader.ReadAccess(ctx, roomID, userID)
	if err != nil {
		return ThreadPage{}, err
	}
	participant := ""
	if inc == IncludeParticipated {
		participant = userID
	}
	threads, err := s.store.Threads(ctx, roomID, participant, from, limit)
	if err != nil {
		return ThreadPage{}, err
	}
	var p ThreadPage
	if len(threads) == limit {
		p.HasNext, p.Next = true, threads[len(threads)-1].LatestPos
	}
	ids := make([]string, len(threads))
	for i, t := range threads {
		ids[i] = t.RootID
	}
	byID, err := s.store.EventPositions(ctx, ids)
	if err != nil {
		return ThreadPage{}, err
	}
	for _, t := range threads {
		if ev, ok := byID[t.RootID]; ok && acc.CanSee(&ev) {
			p.Roots = append(p.Roots, ev)
		}
	}
	if err := s.Bundle(ctx, acc, who, roomID, p.Roots); err != nil {
		return ThreadPage{}, err
	}
	return p, nil
}
