package rooms_test

// Tests of the writer's failure paths (service.go: runBatch, tryBatch,
// safeApply; batch.go: undo) on the real SQLite and PostgreSQL stores, with
// chosen statements made to fail through storage's test-only fault hook
// (storage/faults.go). They drive the writer through the Service's public
// methods only, so they hold whatever the writer's insides become.

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

const (
	alice = "@alice:test.local"
	bob   = "@bob:test.local"
)

// errInjected is what the faults return; a failed write's error wraps it.
var errInjected = errors.New("injected fault")

// commitLog records the commits the writer announces (the CommitListener),
// which happens only for batches that committed.
type commitLog struct {
	mu      sync.Mutex
	commits []rooms.Commit // guarded by mu
}

func (l *commitLog) Committed(c *rooms.Commit) {
	l.mu.Lock()
	l.commits = append(l.commits, *c)
	l.mu.Unlock()
}

// since returns the commits after the first n.
func (l *commitLog) since(n int) []rooms.Commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.commits[n:])
}

func (l *commitLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.commits)
}

// faultEnv is a writer on a real store with faults at hand.
type faultEnv struct {
	svc   *rooms.Service
	store *storage.Store
	log   *commitLog
}

// forEachStore runs f on SQLite and, when PARLEY_TEST_DATABASE_URL is set,
// on a fresh PostgreSQL database.
func forEachStore(t *testing.T, f func(t *testing.T, env *faultEnv)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newFaultEnv(t, "")) })
	t.Run("postgres", func(t *testing.T) {
		admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
		if admin == "" {
			t.Skip("PARLEY_TEST_DATABASE_URL not set: no PostgreSQL server to test against")
		}
		f(t, newFaultEnv(t, hstest.NewPostgresDB(t, admin)))
	})
}

func newFaultEnv(t *testing.T, url string) *faultEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := storage.Open(ctx, url, filepath.Join(dir, "parley.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	key, err := pdu.LoadOrCreateKey(filepath.Join(dir, "signing.key"), "test.local")
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	log := &commitLog{}
	svc, err := rooms.New(ctx, rooms.Config{ServerName: "test.local", Key: key, Store: store, Listener: log,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("rooms.New: %v", err)
	}
	t.Cleanup(func() {
		store.SetStatementFault(nil)
		store.SetCommitFault(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		store.Close()
	})
	return &faultEnv{svc: svc, store: store, log: log}
}

func (e *faultEnv) createRoom(t *testing.T, name string) string {
	t.Helper()
	id, err := e.svc.CreateRoom(context.Background(), rooms.CreateRequest{Creator: alice, Name: name, Preset: "public_chat"})
	if err != nil {
		t.Fatalf("CreateRoom(%s): %v", name, err)
	}
	return id
}

func (e *faultEnv) send(roomID, sender, body string) (string, error) {
	return e.svc.Send(context.Background(), rooms.SendRequest{RoomID: roomID, Sender: sender, Type: "m.room.message",
		Content: json.RawMessage(`{"msgtype":"m.text","body":"` + body + `"}`)})
}

func (e *faultEnv) setState(roomID, typ, key, content string) (string, error) {
	return e.svc.Send(context.Background(), rooms.SendRequest{RoomID: roomID, Sender: alice, Type: typ, StateKey: &key, Content: json.RawMessage(content)})
}

func (e *faultEnv) join(roomID, user string) (string, error) {
	return e.svc.ChangeMembership(context.Background(), rooms.MembershipRequest{RoomID: roomID, Sender: user, Target: user, Membership: "join"})
}

// head returns the last event of a room as the store has it, by walking
// from a known event to the newest one of the room in the store's order.
func (e *faultEnv) event(t *testing.T, id string) storage.Event {
	t.Helper()
	ev, err := e.store.GetEvent(context.Background(), id)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", id, err)
	}
	return ev
}

func (e *faultEnv) maxPos(t *testing.T) int64 {
	t.Helper()
	p, err := e.store.MaxPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// prevOf returns an event's prev_events and depth from its stored PDU.
func prevOf(ev storage.Event) ([]string, int64) {
	var prev []string
	for _, p := range gjson.GetBytes(ev.PDU, "prev_events").Array() {
		prev = append(prev, p.String())
	}
	return prev, gjson.GetBytes(ev.PDU, "depth").Int()
}

// checkFollows checks that next was built on last: the writer's cached head
// of the room was what the store holds, not a write that never committed.
func (e *faultEnv) checkFollows(t *testing.T, lastID, nextID string) {
	t.Helper()
	last, next := e.event(t, lastID), e.event(t, nextID)
	_, lastDepth := prevOf(last)
	prev, depth := prevOf(next)
	if !slices.Equal(prev, []string{lastID}) || depth != lastDepth+1 {
		t.Errorf("next event has prev_events %v and depth %d, want [%s] and %d: the writer built on an event that never committed",
			prev, depth, lastID, lastDepth+1)
	}
}

// gate makes the writer stop inside the first event insert into room until
// the returned release is called, so that writes queued meanwhile form one
// batch. inner runs for every other statement.
type gate struct {
	room    string
	armed   atomic.Bool
	started chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate(room string) *gate {
	g := &gate{room: room, started: make(chan struct{}), open: make(chan struct{})}
	g.armed.Store(true)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) fault(inner storage.StatementFault) storage.StatementFault {
	return func(q string, args []driver.NamedValue) error {
		if storage.IsStatement(q, storage.StmtInsertEvent) && storage.ArgsHold(args, g.room) && g.armed.CompareAndSwap(true, false) {
			close(g.started)
			<-g.open
			return nil
		}
		if inner != nil {
			return inner(q, args)
		}
		return nil
	}
}

// batchUp runs hold (a write to the gate's room) and, while the writer is
// stopped inside it, queues the writes of jobs, so that they share the next
// batch. It returns each job's error.
func batchUp(t *testing.T, env *faultEnv, g *gate, hold func() error, jobs []func() error) []error {
	t.Helper()
	t.Cleanup(g.release)
	holdErr := make(chan error, 1)
	go func() { holdErr <- hold() }()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never reached the gate")
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { errs[i] = job() })
	}
	hstest.Eventually(t, "the jobs to queue behind the gate", func() bool { return env.svc.QueueDepth() == len(jobs) })
	g.release()
	wg.Wait()
	if err := <-holdErr; err != nil {
		t.Fatalf("the gate's own write: %v", err)
	}
	return errs
}

// TestWriterRetriesAlone: when one write of a batch poisons the
// transaction (a failed or panicking statement, or a refused opening event
// of a new room), the batch is rolled back and each write is retried
// alone: the others commit, each in its own commit, the bad one alone
// fails, no position is skipped, and the writer keeps serving.
func TestWriterRetriesAlone(t *testing.T) {
	const refusedRoom = "!refusedroomxxxxxxx:test.local"
	cases := []struct {
		name string
		// fault fails the bad job's statements; bad is its room.
		fault   func(bad string, tries *atomic.Int32) storage.StatementFault
		badJob  func(env *faultEnv, bad string) func() error
		wantErr func(err error) bool
		// wantTries is how often the bad job's faulty statement ran: once
		// in the batch, once alone.
		wantTries int32
		after     func(t *testing.T, env *faultEnv) // further checks
	}{
		{
			name: "event insert fails",
			fault: func(bad string, tries *atomic.Int32) storage.StatementFault {
				return func(q string, args []driver.NamedValue) error {
					if storage.IsStatement(q, storage.StmtInsertEvent) && storage.ArgsHold(args, bad) {
						tries.Add(1)
						return errInjected
					}
					return nil
				}
			},
			badJob:    func(env *faultEnv, bad string) func() error { return sendJob(env, bad, "bad") },
			wantErr:   func(err error) bool { return errors.Is(err, errInjected) },
			wantTries: 2,
		},
		{
			name: "state upsert fails",
			fault: func(bad string, tries *atomic.Int32) storage.StatementFault {
				return func(q string, args []driver.NamedValue) error {
					if storage.IsStatement(q, storage.StmtUpsertState) && storage.ArgsHold(args, bad) {
						tries.Add(1)
						return errInjected
					}
					return nil
				}
			},
			badJob: func(env *faultEnv, bad string) func() error {
				return func() error { _, err := env.setState(bad, "m.room.topic", "", `{"topic":"never"}`); return err }
			},
			wantErr:   func(err error) bool { return errors.Is(err, errInjected) },
			wantTries: 2,
		},
		{
			name: "membership upsert fails",
			fault: func(bad string, tries *atomic.Int32) storage.StatementFault {
				return func(q string, args []driver.NamedValue) error {
					if storage.IsStatement(q, storage.StmtUpsertMembership) && storage.ArgsHold(args, bad) {
						tries.Add(1)
						return errInjected
					}
					return nil
				}
			},
			badJob: func(env *faultEnv, bad string) func() error {
				return func() error { _, err := env.join(bad, bob); return err }
			},
			wantErr:   func(err error) bool { return errors.Is(err, errInjected) },
			wantTries: 2,
		},
		{
			name: "a statement panics",
			fault: func(bad string, tries *atomic.Int32) storage.StatementFault {
				return func(q string, args []driver.NamedValue) error {
					if storage.IsStatement(q, storage.StmtInsertEvent) && storage.ArgsHold(args, bad) {
						tries.Add(1)
						panic("injected panic")
					}
					return nil
				}
			},
			badJob:    func(env *faultEnv, bad string) func() error { return sendJob(env, bad, "bad") },
			wantErr:   func(err error) bool { return err != nil && strings.Contains(err.Error(), "panicked") },
			wantTries: 2,
		},
		{
			// No fault: the auth rules refuse the new room's join rules
			// (the override leaves the creator without power), which
			// poisons the batch by design, so no half-made room stays.
			name: "an opening event of a new room is refused",
			badJob: func(env *faultEnv, _ string) func() error {
				return func() error {
					_, err := env.svc.CreateRoom(context.Background(), rooms.CreateRequest{
						RoomID: refusedRoom, Creator: alice, RoomVersion: "11", Preset: "public_chat",
						PowerLevelOverride: json.RawMessage(`{"users":{"` + alice + `":0},"state_default":50}`),
					})
					return err
				}
			},
			wantErr: func(err error) bool { return errors.Is(err, rooms.ErrForbidden) },
			after: func(t *testing.T, env *faultEnv) {
				if _, err := env.store.GetRoom(context.Background(), refusedRoom); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("GetRoom(refused room) = %v, want ErrNotFound: nothing of a refused room is kept", err)
				}
				if _, err := env.send(refusedRoom, alice, "hello"); !errors.Is(err, rooms.ErrUnknownRoom) {
					t.Errorf("send to the refused room = %v, want ErrUnknownRoom (not left in the writer's cache)", err)
				}
			},
		},
	}
	forEachStore(t, func(t *testing.T, env *faultEnv) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				gateRoom, roomA, bad, roomC := env.createRoom(t, "gate"), env.createRoom(t, "a"), env.createRoom(t, "bad"), env.createRoom(t, "c")
				lastBad, err := env.send(bad, alice, "before")
				if err != nil {
					t.Fatal(err)
				}
				var tries atomic.Int32
				var inner storage.StatementFault
				if tc.fault != nil {
					inner = tc.fault(bad, &tries)
				}
				g := newGate(gateRoom)
				env.store.SetStatementFault(g.fault(inner))
				defer env.store.SetStatementFault(nil)

				var idA, idC string
				before := env.log.len()
				errs := batchUp(t, env, g, sendJob(env, gateRoom, "gate"), []func() error{
					func() (err error) { idA, err = env.send(roomA, alice, "a"); return err },
					tc.badJob(env, bad),
					func() (err error) { idC, err = env.send(roomC, alice, "c"); return err },
				})
				env.store.SetStatementFault(nil)

				if errs[0] != nil || errs[2] != nil {
					t.Errorf("good writes = %v, %v; want both committed", errs[0], errs[2])
				}
				if !tc.wantErr(errs[1]) {
					t.Errorf("bad write = %v, want its own failure", errs[1])
				}
				if got := tries.Load(); got != tc.wantTries {
					t.Errorf("the bad write's statement ran %d times, want %d (in the batch, then alone)", got, tc.wantTries)
				}
				// Retried alone: after the gate's commit, A and C commit
				// separately (in either order: they queued concurrently).
				commits := env.log.since(before)
				var got []string
				for _, c := range commits[1:] {
					var ids []string
					for _, ev := range c.Events {
						ids = append(ids, ev.RoomID)
					}
					got = append(got, fmt.Sprint(ids))
				}
				slices.Sort(got)
				want := []string{fmt.Sprint([]string{roomA}), fmt.Sprint([]string{roomC})}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("commits after the gate carry rooms %v, want %v (each good write alone)", got, want)
				}
				// No position was skipped or handed out twice.
				a, c := env.event(t, idA).Pos, env.event(t, idC).Pos
				if gp := commits[0].Pos; min(a, c) != gp+1 || max(a, c) != gp+2 || env.maxPos(t) != gp+2 {
					t.Errorf("positions gate %d, A %d, C %d, max %d; want consecutive", gp, a, c, env.maxPos(t))
				}
				if tc.after != nil {
					tc.after(t, env)
				}
				// The writer serves on, and its cache of the bad room is
				// what the store holds: the next event follows the last
				// committed one, and bob, whose join failed, is no member.
				next, err := env.send(bad, alice, "after")
				if err != nil {
					t.Fatalf("send after the failure: %v", err)
				}
				env.checkFollows(t, lastBad, next)
				if _, err := env.send(bad, bob, "not a member"); err == nil {
					t.Errorf("bob sent to a room his failed join never entered")
				}
			})
		}
	})
}

func sendJob(env *faultEnv, roomID, body string) func() error {
	return func() error { _, err := env.send(roomID, alice, body); return err }
}
