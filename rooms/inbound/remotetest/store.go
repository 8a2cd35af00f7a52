package remotetest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
)

// Store is an in-memory room store for one room: the inbound pipeline's
// Source and Persister. It keeps what the real store keeps (events by kind,
// the state after each, forward extremities, current state) in the
// simplest way, and refuses a verdict whose ExtremitiesSeen are stale with
// inbound.ErrExtremitiesMoved, as the writer does. Safe for concurrent use.
type Store struct {
	roomID  string
	version string

	// BeforePersist, when set, runs at the start of every Persist call
	// (n counts calls from 1) without the lock held, so a test can move
	// the room between check and write. Set it before use.
	BeforePersist func(n int, v *inbound.Verdict)

	mu          sync.Mutex // guards the fields below
	events      map[string]inbound.Stored
	kinds       map[string]inbound.Kind
	after       map[string]stateres.StateMap
	current     stateres.StateMap
	extremities []string
	persists    int
	batches     int
	pos         int64
}

var (
	_ inbound.Source         = (*Store)(nil)
	_ inbound.Persister      = (*Store)(nil)
	_ inbound.BatchPersister = (*Store)(nil)
	_ inbound.Keys           = Keyring(nil)
)

// NewStore returns an empty store for r's room.
func NewStore(r *Room) *Store {
	return &Store{
		roomID: r.ID, version: r.Version,
		events: map[string]inbound.Stored{}, kinds: map[string]inbound.Kind{},
		after: map[string]stateres.StateMap{}, current: stateres.StateMap{},
	}
}

// RoomVersion implements inbound.Source.
func (s *Store) RoomVersion(_ context.Context, roomID string) (string, error) {
	if roomID != s.roomID {
		return "", fmt.Errorf("%w: %s", inbound.ErrUnknownRoom, roomID)
	}
	return s.version, nil
}

// Events implements inbound.Source.
func (s *Store) Events(_ context.Context, ids []string) ([]inbound.Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]inbound.Stored, len(ids))
	for i, id := range ids {
		out[i] = s.events[id]
	}
	return out, nil
}

// StatesAfter implements inbound.Source.
func (s *Store) StatesAfter(_ context.Context, ids []string) ([]stateres.StateMap, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]stateres.StateMap, len(ids))
	for i, id := range ids {
		out[i] = s.after[id]
	}
	return out, nil
}

// Current implements inbound.Source.
func (s *Store) Current(_ context.Context, roomID string, keys []authrules.StateKey) (stateres.StateMap, []string, error) {
	if roomID != s.roomID {
		return nil, nil, fmt.Errorf("%w: %s", inbound.ErrUnknownRoom, roomID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(stateres.StateMap, len(keys))
	for _, k := range keys {
		if id, ok := s.current[k]; ok {
			out[k] = id
		}
	}
	return out, slices.Clone(s.extremities), nil
}

// Persist implements inbound.Persister.
func (s *Store) Persist(ctx context.Context, v *inbound.Verdict) (int64, error) {
	s.mu.Lock()
	s.persists++
	n := s.persists
	s.mu.Unlock()
	if s.BeforePersist != nil {
		s.BeforePersist(n, v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistLocked(ctx, v, false)
}

// PersistBatch implements inbound.BatchPersister: one write (it counts in
// Writes, not in Persists) storing a prefix of vs, refusing as the real
// writer does (rooms.Service.PersistInboundBatch). BeforePersist runs once,
// with the first verdict.
func (s *Store) PersistBatch(ctx context.Context, vs []*inbound.Verdict) ([]int64, error) {
	s.mu.Lock()
	s.batches++
	n := s.persists + s.batches
	s.mu.Unlock()
	if s.BeforePersist != nil && len(vs) > 0 {
		s.BeforePersist(n, vs[0])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var pos []int64
	for i, v := range vs {
		p, err := s.persistLocked(ctx, v, i > 0)
		if err != nil {
			return pos, err
		}
		pos = append(pos, p)
	}
	return pos, nil
}

// persistLocked stores v; with strict, an accepted event whose state
// before is not the current state is refused (it would fork the room).
func (s *Store) persistLocked(ctx context.Context, v *inbound.Verdict, strict bool) (int64, error) {
	ev := v.Event
	live := v.Kind == inbound.Accepted || v.Kind == inbound.SoftFailed
	if live && !sameSet(v.ExtremitiesSeen, s.extremities) {
		return 0, fmt.Errorf("room %s: saw %v, now %v: %w", s.roomID, v.ExtremitiesSeen, s.extremities, inbound.ErrExtremitiesMoved)
	}
	if old, ok := s.kinds[ev.ID]; ok && old != inbound.Outlier {
		return 0, fmt.Errorf("remotetest: event %s already stored as %s", ev.ID, old)
	}
	if strict && v.Kind == inbound.Accepted && !stateEqual(v.StateBefore, s.current) {
		return 0, fmt.Errorf("remotetest: event %s would fork the room: %w", ev.ID, inbound.ErrExtremitiesMoved)
	}
	s.events[ev.ID] = inbound.Stored{Event: ev, Rejected: v.Kind == inbound.Rejected, Outlier: v.Kind == inbound.Outlier}
	s.kinds[ev.ID] = v.Kind
	switch {
	case live:
		after := maps(v.StateBefore)
		if ev.IsState() {
			after[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
		}
		s.after[ev.ID] = after
	case v.Kind == inbound.Rejected && v.StateBefore != nil:
		s.after[ev.ID] = v.StateBefore
	}
	if v.Kind != inbound.Accepted {
		return 0, nil
	}
	s.pos++
	ext := []string{ev.ID}
	for _, id := range s.extremities {
		if !slices.Contains(ev.PrevEvents, id) {
			ext = append(ext, id)
		}
	}
	s.extremities = ext
	if len(ext) == 1 {
		s.current = s.after[ev.ID]
		return s.pos, nil
	}
	sets := make([]stateres.StateMap, len(ext))
	for i, id := range ext {
		sets[i] = s.after[id]
	}
	cur, err := stateres.Resolve(ctx, s.version, sets, loaderLocked{s})
	if err != nil {
		return 0, fmt.Errorf("remotetest: resolve current state: %w", err)
	}
	s.current = cur
	return s.pos, nil
}

// Kind returns how id is stored, 0 when it is not.
func (s *Store) Kind(id string) inbound.Kind {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kinds[id]
}

// CurrentState returns a copy of the room's whole current state.
func (s *Store) CurrentState() stateres.StateMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps(s.current)
}

// Extremities returns the room's forward extremities.
func (s *Store) Extremities() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.extremities)
}

// Persists returns how many times Persist was called.
func (s *Store) Persists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persists
}

// Writes returns how many writes the store took: Persist and PersistBatch
// calls.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persists + s.batches
}

func stateEqual(a, b stateres.StateMap) bool {
	if len(a) != len(b) {
		return false
	}
	for k, id := range a {
		if other, ok := b[k]; !ok || other != id {
			return false
		}
	}
	return true
}

// loaderLocked is the stateres.Loader of a Store whose lock is held.
type loaderLocked struct{ s *Store }

func (l loaderLocked) Events(_ context.Context, ids []string) ([]*pdu.Event, error) {
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		if st := l.s.events[id]; !st.Rejected {
			out[i] = st.Event
		}
	}
	return out, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// Feed accepts each event through p in order and fails t unless each gets
// the kind want.
func Feed(t interface {
	Helper()
	Fatalf(string, ...any)
}, p *inbound.Pipeline, want inbound.Kind, events ...*pdu.Event) {
	t.Helper()
	for _, ev := range events {
		v, _, err := p.Accept(context.Background(), ev.Raw)
		if err != nil {
			t.Fatalf("Accept(%s %s by %s) = %v, want %s", ev.Type, ev.ID, ev.Sender, err, want)
		}
		if v.Kind != want {
			t.Fatalf("Accept(%s %s by %s) = %s (%s), want %s", ev.Type, ev.ID, ev.Sender, v.Kind, v.Reason, want)
		}
	}
}
