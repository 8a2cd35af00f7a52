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
	// pending is a statement fault for the next batchUp, behind its gate.
	pending storage.StatementFault
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

// event reads an event from the store.
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

// TestWriterCommitFailure: when a batch cannot commit, no write in it is
// acknowledged or announced, and the writer's memory is undone: the next
// event of a room follows the last committed one, a state change that
// failed is not what the next one replaces, a member whose join failed is
// no member, a room whose creation failed does not exist, and no position
// is skipped. When the failure passes, each write is retried alone and
// nothing is lost.
func TestWriterCommitFailure(t *testing.T) {
	cases := []struct {
		name string
		// arm makes commits fail: always, or the first batch's only.
		arm func(env *faultEnv, failFrom, failUntil int32)
		// lost: the failure outlasts the retries, so every write fails.
		lost bool
	}{
		{name: "commit fails", lost: true, arm: armCommitFault},
		{name: "commit fails once", lost: false, arm: armCommitFault},
		{name: "watermark write fails", lost: true, arm: armWatermarkFault},
		{name: "watermark write fails once", lost: false, arm: armWatermarkFault},
	}
	forEachStore(t, func(t *testing.T, env *faultEnv) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				gateRoom, room := env.createRoom(t, "gate"), env.createRoom(t, "named")
				last, err := env.send(room, alice, "before")
				if err != nil {
					t.Fatal(err)
				}
				nameBefore := stateID(t, env, room, "m.room.name")
				cacheBefore := env.svc.CacheStats()
				newRoom := env.svc.NewRoomID()
				// The gate's own batch commits; the next one (the writes
				// below, together) fails, and with lost so do the retries.
				until := int32(3)
				if tc.lost {
					until = 1 << 30
				}
				tc.arm(env, 2, until)
				g := newGate(gateRoom)
				env.store.SetStatementFault(g.fault(env.pending))
				env.pending = nil
				before, posBefore := env.log.len(), int64(0)
				var renameID, msgID string
				errs := batchUp(t, env, g, func() error {
					_, err := env.send(gateRoom, alice, "gate")
					posBefore = env.maxPos(t)
					return err
				}, []func() error{
					func() (err error) { msgID, err = env.send(room, alice, "lost?"); return err },
					func() (err error) {
						renameID, err = env.setState(room, "m.room.name", "", `{"name":"renamed"}`)
						return err
					},
					func() error { _, err := env.join(room, bob); return err },
					func() error {
						// A chosen room ID needs a version before 12 (rooms/create_v12.go).
						_, err := env.svc.CreateRoom(ctx, rooms.CreateRequest{RoomID: newRoom, RoomVersion: "11", Creator: alice, Preset: "private_chat"})
						return err
					},
					func() error { return env.svc.PutReceipt(ctx, room, alice, "m.read", last, "") },
					func() error { return env.svc.PutAccountData(ctx, alice, "", "org.example.x", []byte(`{"x":1}`)) },
				})
				env.store.SetStatementFault(nil)
				env.store.SetCommitFault(nil)
				commits := env.log.since(before)
				if !tc.lost {
					for i, err := range errs {
						if err != nil {
							t.Errorf("write %d = %v, want committed on its retry alone", i, err)
						}
					}
					if len(commits) != 1+len(errs) {
						t.Errorf("%d commits after the failure, want %d: the gate's, then one per write retried alone: %+v", len(commits)-1, len(errs), commits)
					}
					if got := stateID(t, env, room, "m.room.name"); got != renameID {
						t.Errorf("m.room.name = %s, want the rename %s", got, renameID)
					}
					if _, err := env.send(room, bob, "member now"); err != nil {
						t.Errorf("bob's send after his join committed: %v", err)
					}
					if _, err := env.store.GetEvent(ctx, msgID); err != nil {
						t.Errorf("the message acknowledged on retry is not stored: %v", err)
					}
					return
				}
				for i, err := range errs {
					if !errors.Is(err, errInjected) {
						t.Errorf("write %d = %v, want the commit's failure", i, err)
					}
				}
				if len(commits) != 1 {
					t.Errorf("%d commits announced after the gate's, want none", len(commits)-1)
				}
				if got := env.maxPos(t); got != posBefore {
					t.Errorf("max position = %d after failed commits, want %d", got, posBefore)
				}
				if got := stateID(t, env, room, "m.room.name"); got != nameBefore {
					t.Errorf("m.room.name = %s, want still %s", got, nameBefore)
				}
				// The writer's memory was undone. (A write that changes no
				// cached state lets the failed batch's cache figures publish.)
				if err := env.svc.PutAccountData(ctx, alice, "", "org.example.settle", []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				if got := env.maxPos(t); got != posBefore+1 {
					t.Errorf("the first write after the failure took position %d, want %d (none skipped)", got, posBefore+1)
				}
				if got := env.svc.CacheStats(); got.Rooms != cacheBefore.Rooms || got.Bytes != cacheBefore.Bytes {
					t.Errorf("room cache after the failed batch: %d rooms, %d bytes; want %d rooms, %d bytes as before it",
						got.Rooms, got.Bytes, cacheBefore.Rooms, cacheBefore.Bytes)
				}
				next, err := env.send(room, alice, "after")
				if err != nil {
					t.Fatalf("send after the failure passed: %v", err)
				}
				env.checkFollows(t, last, next)
				if got := env.event(t, next).Pos; got != posBefore+2 {
					t.Errorf("next event's position = %d, want %d (after the settling write; none skipped)", got, posBefore+2)
				}
				rename, err := env.setState(room, "m.room.name", "", `{"name":"again"}`)
				if err != nil {
					t.Fatal(err)
				}
				if got := gjson.GetBytes(env.event(t, rename).Unsigned, "replaces_state").String(); got != nameBefore {
					t.Errorf("the next rename replaces %s, want %s: the failed rename stayed in the writer's state", got, nameBefore)
				}
				if _, err := env.send(room, bob, "not a member"); !errors.Is(err, rooms.ErrForbidden) && !errors.Is(err, rooms.ErrUnknownRoom) {
					t.Errorf("bob's send after his join failed = %v, want a refusal", err)
				}
				if _, err := env.send(newRoom, alice, "hello"); !errors.Is(err, rooms.ErrUnknownRoom) {
					t.Errorf("send to the room whose creation failed = %v, want ErrUnknownRoom", err)
				}
				if _, err := env.store.GetRoom(ctx, newRoom); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("GetRoom(room whose creation failed) = %v, want ErrNotFound", err)
				}
			})
		}
	})
}

// armCommitFault fails the commits numbered from..until-1 (1 is the next).
func armCommitFault(env *faultEnv, from, until int32) {
	var n atomic.Int32
	env.store.SetCommitFault(func() error {
		if i := n.Add(1); i >= from && i < until {
			return errInjected
		}
		return nil
	})
}

// armWatermarkFault fails the watermark write, the last statement of a
// commit, of the commits numbered from..until-1.
func armWatermarkFault(env *faultEnv, from, until int32) {
	var n atomic.Int32
	env.pending = func(q string, _ []driver.NamedValue) error {
		if !storage.IsStatement(q, storage.StmtWatermark) {
			return nil
		}
		if i := n.Add(1); i >= from && i < until {
			return errInjected
		}
		return nil
	}
}

// stateID returns the event ID of a room's current state event of typ.
func stateID(t *testing.T, env *faultEnv, roomID, typ string) string {
	t.Helper()
	state, err := env.store.CurrentState(context.Background(), roomID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range state {
		if ev.Type == typ && ev.StateKeyOr() == "" {
			return ev.EventID
		}
	}
	return ""
}

// TestWriterCommitAnswerLost: a commit can succeed while its answer never
// arrives (the connection drops after the database committed). The writer
// must not then hand the batch's positions out again or build on events it
// forgot: that made every later write collide with the durable ones and
// fail until a restart. When the store shows the batch is durable, its
// writes are acknowledged; when the store cannot tell, they fail, and the
// writer re-reads the store before its next batch.
func TestWriterCommitAnswerLost(t *testing.T) {
	cases := []struct {
		name string
		// unknown: the store cannot be read either, so the outcome is
		// unknown to the writer. The read goes through the fault hook on
		// PostgreSQL only (SQLite reads use cached prepared statements).
		unknown bool
		txn     string
	}{
		{name: "state event", txn: ""},
		{name: "message with txn", txn: "t1"},
		{name: "outcome unknown", unknown: true},
	}
	forEachStore(t, func(t *testing.T, env *faultEnv) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if tc.unknown && t.Name() != "" && strings.Contains(t.Name(), "sqlite") {
					t.Skip("SQLite reads bypass the fault hook")
				}
				ctx := context.Background()
				room := env.createRoom(t, "r")
				if _, err := env.send(room, alice, "before"); err != nil {
					t.Fatal(err)
				}
				var committed, maxReads atomic.Int32
				env.store.SetStatementFault(func(q string, _ []driver.NamedValue) error {
					if q == storage.StmtCommitted && committed.Add(1) == 1 {
						return errInjected
					}
					if tc.unknown && strings.HasPrefix(q, "SELECT MAX(pos) FROM") {
						maxReads.Add(1)
						return errInjected
					}
					return nil
				})
				req := rooms.SendRequest{RoomID: room, Sender: alice, DeviceID: "D", TxnID: tc.txn, Type: "m.room.message",
					Content: json.RawMessage(`{"msgtype":"m.text","body":"maybe"}`)}
				if tc.txn == "" {
					req.Type, req.StateKey, req.Content = "m.room.topic", new(string), json.RawMessage(`{"topic":"maybe"}`)
				}
				id, err := env.svc.Send(ctx, req)
				if tc.unknown {
					if !errors.Is(err, errInjected) {
						t.Errorf("send whose commit's outcome is unknown = %v, want the commit's error", err)
					}
				} else if err != nil {
					t.Errorf("send whose commit is durable = %v, want it acknowledged", err)
				}
				env.store.SetStatementFault(nil)
				// The durable event, as the store has it.
				var durable storage.Event
				if tc.txn == "" {
					durable = env.event(t, stateID(t, env, room, "m.room.topic"))
				} else {
					durable = env.event(t, id)
				}
				if got := gjson.GetBytes(durable.Client, "content.body").String() + gjson.GetBytes(durable.Client, "content.topic").String(); got != "maybe" {
					t.Fatalf("the durable event holds %q, want the send's", got)
				}
				if tc.txn != "" {
					again, err := env.svc.Send(ctx, req)
					if err != nil || again != id {
						t.Errorf("the client's retry = %s, %v; want the first event %s", again, err, id)
					}
				}
				// The writer serves on, above the durable positions and on
				// top of the durable event.
				for i := range 3 {
					next, err := env.send(room, alice, fmt.Sprint("after ", i))
					if err != nil {
						t.Fatalf("send %d after the lost answer: %v", i, err)
					}
					if i == 0 {
						env.checkFollows(t, durable.EventID, next)
						if got := env.event(t, next).Pos; got <= durable.Pos {
							t.Errorf("next position %d, want above the durable event's %d", got, durable.Pos)
						}
					}
				}
			})
		}
	})
}
