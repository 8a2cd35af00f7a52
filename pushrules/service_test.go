package pushrules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// fakeStore is an in-memory Store that counts reads and can fail.
type fakeStore struct {
	mu      sync.Mutex
	docs    map[string]string
	gets    int
	failPut error
}

func newFakeStore() *fakeStore { return &fakeStore{docs: map[string]string{}} }

func (f *fakeStore) GetPushRules(_ context.Context, userID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return f.docs[userID], nil
}

func (f *fakeStore) PutPushRules(_ context.Context, userID, rules string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPut != nil {
		return f.failPut
	}
	f.docs[userID] = rules
	return nil
}

func (f *fakeStore) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

// fakePub records published rulesets.
type fakePub struct {
	mu   sync.Mutex
	last map[string]string
}

func (p *fakePub) PutAccountData(_ context.Context, userID, roomID, typ string, content []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[string]string{}
	}
	p.last[userID+"/"+typ] = string(content)
	return nil
}

const alice = "@alice:example.org"

func TestServiceEdits(t *testing.T) {
	ctx := context.Background()
	room := "!r:example.org"
	pattern := "cake"
	cases := []struct {
		name    string
		edit    func(s *Service) error
		wantErr error
		check   func(t *testing.T, rs Ruleset)
	}{
		{"add room rule", func(s *Service) error {
			return s.Put(ctx, alice, "room", room, NewRule{Actions: json.RawMessage(`[]`)})
		}, nil, func(t *testing.T, rs Ruleset) {
			if rs.find("room", room) == nil {
				t.Errorf("room rule missing: %+v", rs.Room)
			}
		}},
		{"add content rule", func(s *Service) error {
			return s.Put(ctx, alice, "content", "c", NewRule{Actions: json.RawMessage(`["notify"]`), Pattern: &pattern})
		}, nil, func(t *testing.T, rs Ruleset) {
			if got := ruleIDs(rs.Content); got != "c,.m.rule.contains_user_name" {
				t.Errorf("content = %s, want c,.m.rule.contains_user_name", got)
			}
		}},
		{"disable a default", func(s *Service) error {
			return s.SetEnabled(ctx, alice, "underride", ".m.rule.message", false)
		}, nil, func(t *testing.T, rs Ruleset) {
			if rs.find("underride", ".m.rule.message").Enabled {
				t.Error(".m.rule.message still enabled")
			}
		}},
		{"actions of a default", func(s *Service) error {
			return s.SetActions(ctx, alice, "override", ".m.rule.master", json.RawMessage(` [ "notify" ] `))
		}, nil, func(t *testing.T, rs Ruleset) {
			if got := string(rs.Override[0].Actions); got != `["notify"]` {
				t.Errorf("master actions = %s, want [\"notify\"]", got)
			}
		}},
		{"unknown kind", func(s *Service) error { return s.SetEnabled(ctx, alice, "weird", "x", true) }, ErrInvalidParam, nil},
		{"unknown rule", func(s *Service) error { return s.SetEnabled(ctx, alice, "override", "nope", true) }, ErrNotFound, nil},
		{"delete a default", func(s *Service) error { return s.Delete(ctx, alice, "override", ".m.rule.master") }, ErrInvalidParam, nil},
		{"reserved id", func(s *Service) error {
			return s.Put(ctx, alice, "override", ".mine", NewRule{Actions: json.RawMessage(`[]`)})
		}, ErrInvalidParam, nil},
		{"room rule not a room", func(s *Service) error {
			return s.Put(ctx, alice, "room", "x", NewRule{Actions: json.RawMessage(`[]`)})
		}, ErrInvalidParam, nil},
		{"content without pattern", func(s *Service) error {
			return s.Put(ctx, alice, "content", "c", NewRule{Actions: json.RawMessage(`[]`)})
		}, ErrMissingParam, nil},
		{"missing anchor", func(s *Service) error {
			return s.Put(ctx, alice, "override", "o", NewRule{Actions: json.RawMessage(`[]`), Before: "zz"})
		}, ErrAnchorNotFound, nil},
		{"bad actions", func(s *Service) error {
			return s.SetActions(ctx, alice, "override", ".m.rule.master", json.RawMessage(`{}`))
		}, ErrBadJSON, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newFakeStore()
			s := New(store, &fakePub{}, nil, 0)
			err := c.edit(s)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if c.wantErr != nil {
				if store.docs[alice] != "" {
					t.Errorf("a failed edit stored %s", store.docs[alice])
				}
				return
			}
			rs, err := s.Ruleset(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, rs)
			// A fresh service reads the same from the store.
			rs2, err := New(store, nil, nil, 0).Ruleset(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(rs)
			b, _ := json.Marshal(rs2)
			if string(a) != string(b) {
				t.Errorf("stored ruleset %s differs from the cached one %s", b, a)
			}
		})
	}
}

func TestServiceCache(t *testing.T) {
	ctx := context.Background()
	store := newFakeStore()
	pub := &fakePub{}
	s := New(store, pub, nil, 2)
	if _, _, err := s.ForSync(ctx, alice, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ForSync(ctx, alice, false); err != nil {
		t.Fatal(err)
	}
	if got := store.reads(); got != 1 {
		t.Errorf("reads after two syncs = %d, want 1 (the second from the cache)", got)
	}
	room := "!r:example.org"
	if err := s.Put(ctx, alice, "room", room, NewRule{Actions: json.RawMessage(`[]`)}); err != nil {
		t.Fatal(err)
	}
	muted, _, err := s.ForSync(ctx, alice, false)
	if err != nil || !muted[room] {
		t.Errorf("muted after the edit = %v %v, want %s", muted, err, room)
	}
	if got := store.reads(); got != 1 {
		t.Errorf("reads after an edit = %d, want 1 (the edit refreshes the entry)", got)
	}
	if !strings.Contains(pub.last[alice+"/m.push_rules"], room) {
		t.Errorf("published ruleset lacks the rule: %s", pub.last[alice+"/m.push_rules"])
	}
	_, ruleset, err := s.ForSync(ctx, alice, true)
	if err != nil || !strings.Contains(string(ruleset), room) || !strings.HasPrefix(string(ruleset), `{"global":`) {
		t.Errorf("initial sync ruleset = %s %v", ruleset, err)
	}

	// The LRU holds 2 users: a third evicts the least recently used.
	for _, u := range []string{"@b:x", "@c:x"} {
		if _, err := s.Ruleset(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	before := store.reads()
	if _, err := s.Ruleset(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if got := store.reads() - before; got != 1 {
		t.Errorf("reads for an evicted user = %d, want 1", got)
	}
	if len(s.users) != 2 || s.lru.Len() != 2 {
		t.Errorf("cache holds %d/%d entries, want 2", len(s.users), s.lru.Len())
	}
}

// TestServiceFailedWriteLeavesNoStaleEntry: a failed store write is
// reported and the cache does not serve the unsaved edit.
func TestServiceFailedWriteLeavesNoStaleEntry(t *testing.T) {
	ctx := context.Background()
	store := newFakeStore()
	s := New(store, nil, nil, 0)
	if _, err := s.Ruleset(ctx, alice); err != nil {
		t.Fatal(err)
	}
	store.failPut = errors.New("disk full")
	if err := s.SetEnabled(ctx, alice, "override", ".m.rule.master", true); err == nil {
		t.Fatal("edit succeeded with a failing store")
	}
	rs, err := s.Ruleset(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Override[0].Enabled {
		t.Error("the cache serves an edit that was never stored")
	}
}

// TestServiceConcurrentEdits: concurrent edits of one user all land, and
// readers racing them see no torn state (run with -race).
func TestServiceConcurrentEdits(t *testing.T) {
	ctx := context.Background()
	store := newFakeStore()
	s := New(store, nil, nil, 0)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.Put(ctx, alice, "override", fmt.Sprint("r", i), NewRule{Actions: json.RawMessage(`[]`)}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, _, err := s.ForSync(ctx, alice, i%2 == 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, svc := range []*Service{s, New(store, nil, nil, 0)} {
		rs, err := svc.Ruleset(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(rs.Override) - len(defaults(alice).Override); got != 20 {
			t.Errorf("user override rules = %d, want 20", got)
		}
	}
}

func FuzzCheckActions(f *testing.F) {
	for _, s := range []string{`[]`, `["notify",{"set_tweak":"sound","value":"x"}]`, `{}`, `[1]`, `null`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := CheckActions(json.RawMessage(s))
		if err == nil {
			if _, err := CheckActions(out); err != nil {
				t.Errorf("CheckActions(%s) = %s, which it then refuses: %v", s, out, err)
			}
		}
		_, _ = checkConditions(json.RawMessage(s))
	})
}

func FuzzParseDocument(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"user":{"room":[{"rule_id":"!a:b","enabled":true,"actions":[]}]},"defaults":{"override/.m.rule.master":{"enabled":true}}}`, `[]`, `{"user":{"override":[{"conditions":1}]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parse(alice, s)
		if err != nil {
			return
		}
		mutedRoomsIn(d)
		_ = merge(alice, d)
		if _, err := json.Marshal(d); err != nil {
			t.Errorf("a parsed document does not encode: %v", err)
		}
	})
}

// BenchmarkPushRulesLoad compares what sync pays for the push rules with
// the cache warm (every sync after the first) and cold (a cache of one
// entry, alternating two users, so every load reads and decodes). The
// store is in memory, so "cold" counts decoding, not database time.
func BenchmarkPushRulesLoad(b *testing.B) {
	ctx := context.Background()
	store := newFakeStore()
	for _, u := range []string{alice, "@bob:example.org"} {
		s := New(store, nil, nil, 0)
		for i := 0; i < 20; i++ {
			room := fmt.Sprintf("!room%d:example.org", i)
			if err := s.Put(ctx, u, "room", room, NewRule{Actions: json.RawMessage(`[]`)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("warm", func(b *testing.B) {
		s := New(store, nil, nil, 0)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := s.ForSync(ctx, alice, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		s := New(store, nil, nil, 1)
		users := []string{alice, "@bob:example.org"}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := s.ForSync(ctx, users[i%2], false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEvaluatorCachedAndInvalidated: the compiled ruleset is built once
// and kept (no read, the same evaluator) until an edit, which the next
// call sees.
func TestEvaluatorCachedAndInvalidated(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	s := New(st, nil, nil, 0)
	const bob = "@bob:example.org"
	msg := func() *Event {
		return &Event{JSON: gjsonParse(`{"type":"m.room.message","sender":"@a:example.org","room_id":"!r:example.org","content":{"body":"hi"}}`), MemberCount: 3}
	}
	e1, err := s.Evaluator(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := s.Evaluator(ctx, bob)
	if e1 != e2 || st.reads() != 1 {
		t.Errorf("second Evaluator: same = %v, reads = %d; want the cached one, 1 read", e1 == e2, st.reads())
	}
	if a := e1.Eval(msg()); a.RuleID != ".m.rule.message" || !a.Notify {
		t.Errorf("before the edit: %+v, want .m.rule.message notifying", a)
	}
	if err := s.SetEnabled(ctx, bob, "underride", ".m.rule.message", false); err != nil {
		t.Fatal(err)
	}
	e3, _ := s.Evaluator(ctx, bob)
	if a := e3.Eval(msg()); e3 == e1 || a.Notify {
		t.Errorf("after disabling .m.rule.message: new = %v, %+v; want a new evaluator that does not notify", e3 != e1, a)
	}
}
