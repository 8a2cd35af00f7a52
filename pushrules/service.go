package pushrules

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
)

// Store is what the service needs of the database: the per-user document.
// *storage.Store implements it.
type Store interface {
	// GetPushRules returns the stored document ("" if none).
	GetPushRules(ctx context.Context, userID string) (string, error)
	// PutPushRules replaces the stored document.
	PutPushRules(ctx context.Context, userID, rules string) error
}

// Publisher sends the merged ruleset to the user's clients as m.push_rules
// account data. *rooms.Service implements it.
type Publisher interface {
	PutAccountData(ctx context.Context, userID, roomID, typ string, content []byte) error
}

// DefaultCacheUsers is the cache size when Config leaves it zero.
const DefaultCacheUsers = 10_000

// Service reads and edits users' push rules, with a cache of loaded
// documents so that sync, which needs the muted rooms on every response it
// builds, does not query the database each time.
//
// The cache is an LRU bounded by entry count (users): a document is small
// (at most maxUserPushRules rules, and usually none), so a count bound is
// simple and close enough to a byte bound. Every write goes through the
// service (storage.PutPushRules has no other caller, and clients cannot PUT
// m.push_rules account data), which updates the entry, so it never goes
// stale.
type Service struct {
	// Static after New.
	store Store
	pub   Publisher
	log   *slog.Logger
	max   int

	// edit serialises edits, so two concurrent edits of one user's rules
	// cannot lose each other's change (each is a read-modify-write).
	edit sync.Mutex

	// mu guards the cache fields below.
	mu    sync.Mutex
	lru   *list.List               // of *entry, most recently used first
	users map[string]*list.Element // userID -> element of lru
	// gen counts writes; a load that raced a write does not fill the
	// cache with what it read before the write.
	gen uint64
}

// entry is one user's cached document, with what sync needs derived once.
// Immutable once built (but for eval, set once under evalOnce): readers
// share it without copying. An edit replaces the entry, so the compiled
// ruleset goes with the document it was compiled from.
type entry struct {
	userID string
	doc    *document
	muted  map[string]bool

	evalOnce sync.Once
	eval     *Evaluator // the merged ruleset compiled, on first use (push)
}

// New builds a service. cacheUsers bounds the cache; zero means
// DefaultCacheUsers, negative disables it.
func New(store Store, pub Publisher, log *slog.Logger, cacheUsers int) *Service {
	if cacheUsers == 0 {
		cacheUsers = DefaultCacheUsers
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: store, pub: pub, log: log, max: cacheUsers, lru: list.New(), users: map[string]*list.Element{}}
}

// load returns the user's document, from the cache if there.
func (s *Service) load(ctx context.Context, userID string) (*entry, error) {
	s.mu.Lock()
	if el, ok := s.users[userID]; ok {
		s.lru.MoveToFront(el)
		e := el.Value.(*entry)
		s.mu.Unlock()
		return e, nil
	}
	gen := s.gen
	s.mu.Unlock()

	body, err := s.store.GetPushRules(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("load push rules of %s: %w", userID, err)
	}
	d, err := parse(userID, body)
	if err != nil {
		return nil, err
	}
	e := newEntry(userID, d)
	s.mu.Lock()
	if s.gen == gen {
		s.put(e)
	}
	s.mu.Unlock()
	return e, nil
}

// parse decodes a stored document; "" means no changes.
func parse(userID, body string) (*document, error) {
	d := &document{}
	if body != "" {
		if err := json.Unmarshal([]byte(body), d); err != nil {
			return nil, fmt.Errorf("push rules of %s: %w", userID, err)
		}
	}
	if d.User == nil {
		d.User = map[string][]Rule{}
	}
	if d.Defaults == nil {
		d.Defaults = map[string]ruleChange{}
	}
	return d, nil
}

func newEntry(userID string, d *document) *entry {
	return &entry{userID: userID, doc: d, muted: mutedRoomsIn(d)}
}

// put stores e, evicting the least recently used entry past the bound.
// s.mu must be held.
func (s *Service) put(e *entry) {
	if s.max < 0 {
		return
	}
	if el, ok := s.users[e.userID]; ok {
		el.Value = e
		s.lru.MoveToFront(el)
		return
	}
	s.users[e.userID] = s.lru.PushFront(e)
	for s.lru.Len() > s.max {
		old := s.lru.Remove(s.lru.Back()).(*entry)
		delete(s.users, old.userID)
	}
}

// Ruleset is the user's merged ruleset, defaults included.
func (s *Service) Ruleset(ctx context.Context, userID string) (Ruleset, error) {
	e, err := s.load(ctx, userID)
	if err != nil {
		return Ruleset{}, err
	}
	return merge(userID, e.doc), nil
}

// Rule returns one rule of the merged ruleset.
func (s *Service) Rule(ctx context.Context, userID, kind, ruleID string) (Rule, error) {
	if err := CheckKind(kind); err != nil {
		return Rule{}, err
	}
	e, err := s.load(ctx, userID)
	if err != nil {
		return Rule{}, err
	}
	r, err := lookup(userID, e.doc, kind, ruleID)
	if err != nil {
		return Rule{}, err
	}
	return *r, nil
}

// Evaluator returns the user's whole ruleset compiled for evaluation,
// cached with their rules: a push scan of a busy room compiles each
// member's rules once, and an edit (which replaces the entry) is seen by
// the next call. With a warm cache it makes no query.
func (s *Service) Evaluator(ctx context.Context, userID string) (*Evaluator, error) {
	e, err := s.load(ctx, userID)
	if err != nil {
		return nil, err
	}
	e.evalOnce.Do(func() { e.eval = Compile(merge(userID, e.doc)) })
	return e.eval, nil
}

// ForSync returns the rooms the user mutes and, for an initial sync, the
// ruleset as m.push_rules content ({"global": ...}). The muted map is
// shared: callers must not modify it. With a warm cache it makes no query.
func (s *Service) ForSync(ctx context.Context, userID string, initial bool) (map[string]bool, json.RawMessage, error) {
	e, err := s.load(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	if !initial {
		return e.muted, nil, nil
	}
	ruleset, err := json.Marshal(map[string]any{"global": merge(userID, e.doc)})
	return e.muted, ruleset, err
}

// SetEnabled enables or disables a rule.
func (s *Service) SetEnabled(ctx context.Context, userID, kind, ruleID string, enabled bool) error {
	return s.update(ctx, userID, func(d *document) error {
		return changeRule(userID, d, kind, ruleID, ruleChange{Enabled: &enabled})
	})
}

// SetActions replaces a rule's actions, after checking them.
func (s *Service) SetActions(ctx context.Context, userID, kind, ruleID string, actions json.RawMessage) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	actions, err := CheckActions(actions)
	if err != nil {
		return err
	}
	return s.update(ctx, userID, func(d *document) error {
		return changeRule(userID, d, kind, ruleID, ruleChange{Actions: actions})
	})
}

// Put adds or replaces a user rule.
func (s *Service) Put(ctx context.Context, userID, kind, ruleID string, req NewRule) error {
	if _, err := buildRule(kind, ruleID, req); err != nil {
		return err // checked before any query
	}
	return s.update(ctx, userID, func(d *document) error { return putRule(d, kind, ruleID, req) })
}

// Delete removes a user rule.
func (s *Service) Delete(ctx context.Context, userID, kind, ruleID string) error {
	return s.update(ctx, userID, func(d *document) error { return deleteRule(userID, d, kind, ruleID) })
}

// update applies edit to a copy of the user's document, stores it, caches
// it, and publishes the merged ruleset as m.push_rules account data, which
// is how the user's other clients hear of the change through /sync. The
// document is the truth: a failure to publish is logged, not returned,
// since the change itself was saved.
func (s *Service) update(ctx context.Context, userID string, edit func(d *document) error) error {
	s.edit.Lock()
	defer s.edit.Unlock()
	e, err := s.load(ctx, userID)
	if err != nil {
		return err
	}
	d := e.doc.clone()
	if err := edit(d); err != nil {
		return err
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode push rules of %s: %w", userID, err)
	}
	// Drop the entry first: if the write fails half-way (say, committed
	// but the reply lost), the next read goes to the database.
	s.invalidate(userID)
	if err := s.store.PutPushRules(ctx, userID, string(body)); err != nil {
		return fmt.Errorf("store push rules of %s: %w", userID, err)
	}
	s.mu.Lock()
	s.gen++
	s.put(newEntry(userID, d))
	s.mu.Unlock()
	if s.pub != nil {
		content, err := json.Marshal(map[string]any{"global": merge(userID, d)})
		if err == nil {
			err = s.pub.PutAccountData(context.WithoutCancel(ctx), userID, "", "m.push_rules", content)
		}
		if err != nil {
			s.log.Warn("publish push rules", "user", userID, "err", err)
		}
	}
	return nil
}

// invalidate drops a user's entry, and makes loads in flight not cache
// what they read.
func (s *Service) invalidate(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if el, ok := s.users[userID]; ok {
		s.lru.Remove(el)
		delete(s.users, userID)
	}
}
