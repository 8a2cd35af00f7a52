package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/dag"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/parley-im/parley/storage"
)

// fixture is a room on remote.example with 30 messages by alice, of which
// this server holds only the state events (as outliers, as a join leaves
// them), and a remote that serves the room's events.
type fixture struct {
	room     *remotetest.Room
	store    *remotetest.Store
	keys     remotetest.Keyring
	messages []*pdu.Event // oldest first
	state    stateres.StateMap
	// stranger is a message by a user who never joined: auth rejects it.
	stranger *pdu.Event
	// forged claims alice as sender but is signed by evil.example.
	forged []byte
}

func newFixture(t testing.TB) *fixture {
	remote, evil := remotetest.NewServer("remote.example"), remotetest.NewServer("evil.example")
	r := remotetest.NewRoom(t, "11", remote)
	alice := "@alice:remote.example"
	f := r.Create(alice, `{"room_version":"11"}`)
	stateEvs := []*pdu.Event{r.ByID[f.Prev[0]]} // the create event
	stateEvs = append(stateEvs, f.SendState(alice, "m.room.member", alice, `{"membership":"join"}`))
	stateEvs = append(stateEvs, f.SendState(alice, "m.room.power_levels", "", `{"users":{"@alice:remote.example":100}}`))
	stateEvs = append(stateEvs, f.SendState(alice, "m.room.join_rules", "", `{"join_rule":"public"}`))
	fx := &fixture{room: r, store: remotetest.NewStore(r), keys: remotetest.NewKeyring(remote), state: stateres.StateMap{}}
	for k, v := range f.State {
		fx.state[k] = v
	}
	for i := range 30 {
		fx.messages = append(fx.messages, f.SendMessage(alice, fmt.Sprintf("m-%d", i)))
	}
	fx.stranger = f.BuildMessage("@mallory:remote.example", "let me talk")
	fx.forged = evil.Forge(t, "11", map[string]any{"room_id": r.ID, "sender": alice, "type": "m.room.message", "depth": 99,
		"prev_events": []string{fx.messages[29].ID}, "auth_events": []string{}, "origin_server_ts": 1, "content": map[string]any{"body": "forged"}})
	p := checks.New(fx.store, fx.keys, fx.store)
	for _, ev := range stateEvs {
		if _, _, err := p.AcceptOutlier(context.Background(), r.ID, ev.Raw); err != nil {
			t.Fatalf("store %s as an outlier: %v", ev.Type, err)
		}
	}
	return fx
}

// fakeFetcher serves the fixture's room as remote.example would.
type fakeFetcher struct {
	fx       *fixture
	answer   []json.RawMessage
	mu       sync.Mutex
	stateIDs int
}

func (f *fakeFetcher) Backfill(context.Context, string, string, []string, int) ([]json.RawMessage, error) {
	return f.answer, nil
}

func (f *fakeFetcher) EventAuth(context.Context, string, string, string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, id := range f.fx.state {
		out = append(out, f.fx.room.ByID[id].Raw)
	}
	return out, nil
}

func (f *fakeFetcher) Event(_ context.Context, _ string, id string) (json.RawMessage, error) {
	if ev := f.fx.room.ByID[id]; ev != nil {
		return ev.Raw, nil
	}
	return nil, errors.New("not found")
}

func (f *fakeFetcher) StateIDs(context.Context, string, string, string) ([]string, []string, error) {
	f.mu.Lock()
	f.stateIDs++
	f.mu.Unlock()
	var state []string
	for _, id := range f.fx.state {
		state = append(state, id)
	}
	return state, state, nil
}

func (f *fakeFetcher) State(context.Context, string, string, string) ([]json.RawMessage, []json.RawMessage, error) {
	return nil, nil, errors.New("not served")
}

// recordingRooms answers from the fixture's store and records what
// PersistBackfill is given.
type recordingRooms struct {
	store *remotetest.Store
	mu    sync.Mutex
	got   []rooms.InboundEvent
}

func (r *recordingRooms) PersistBackfill(_ context.Context, _ string, evs []rooms.InboundEvent) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, evs...)
	return len(evs), nil
}

func (r *recordingRooms) StateAfterEvent(context.Context, string) (stateres.StateMap, error) {
	return nil, rooms.ErrNoState
}

func (r *recordingRooms) EventsByID(_ context.Context, ids []string) ([]dag.StoredPDU, error) {
	var out []dag.StoredPDU
	for _, id := range ids {
		switch r.store.Kind(id) {
		case 0:
		case checks.Outlier:
			out = append(out, dag.StoredPDU{EventID: id, Kind: dag.Outlier})
		default:
			out = append(out, dag.StoredPDU{EventID: id, Pos: 1, StateGroup: 1})
		}
	}
	return out, nil
}

type oneServerStore struct{}

func (oneServerStore) BackwardGaps(_ context.Context, ids []string) ([]string, error) {
	return ids[:1], nil
}
func (oneServerStore) RoomMemberships(context.Context, string) ([]storage.Membership, error) {
	return []storage.Membership{{UserID: "@alice:remote.example", Membership: "join"}}, nil
}

func (fx *fixture) backfiller(f *fakeFetcher, r *recordingRooms) *Backfiller {
	return New(Config{ServerName: "here.example", Fetcher: f, Source: fx.store, Keys: fx.keys,
		Outliers: checks.New(fx.store, fx.keys, fx.store), Rooms: r, Store: oneServerStore{}, Log: slog.New(slog.DiscardHandler)})
}

// TestFillChecksEachEvent: a /backfill answer, newest first as servers
// send it, goes through the inbound checks one event at a time, oldest
// first: the good history is handed to the writer as backfilled with the
// state before each event (the remote's state_ids once, for the oldest;
// the page's own chain after that), a message by a user who never joined
// as rejected, and an event whose signature is not its sender's server's
// not at all.
func TestFillChecksEachEvent(t *testing.T) {
	fx := newFixture(t)
	f := &fakeFetcher{fx: fx}
	for i := len(fx.messages) - 1; i >= 0; i-- {
		f.answer = append(f.answer, fx.messages[i].Raw)
	}
	f.answer = append(f.answer, fx.stranger.Raw, fx.forged)
	r := &recordingRooms{store: fx.store}
	if !fx.backfiller(f, r).Fill(context.Background(), fx.room.ID, []storage.Event{{EventID: "$gap"}}) {
		t.Fatal("Fill = false, want true")
	}
	kinds := map[string]rooms.InboundKind{}
	for _, in := range r.got {
		kinds[in.Event.ID] = in.Kind
		if in.StateBefore == nil {
			t.Errorf("event %s handed over without the state before it", in.Event.ID)
		}
	}
	for i, m := range fx.messages {
		if kinds[m.ID] != rooms.Backfilled {
			t.Errorf("message %d: kind %v, want backfilled", i, kinds[m.ID])
		}
	}
	if kinds[fx.stranger.ID] != rooms.Rejected {
		t.Errorf("a stranger's message: kind %v, want rejected", kinds[fx.stranger.ID])
	}
	if len(r.got) != len(fx.messages)+1 {
		t.Errorf("events handed to the writer = %d, want %d (the forged one dropped)", len(r.got), len(fx.messages)+1)
	}
	if f.stateIDs != 1 {
		t.Errorf("state_ids requests = %d, want 1 (for the oldest event only)", f.stateIDs)
	}
}

// FuzzBackfillAnswer: whatever another server answers to /backfill, Fill
// neither panics nor hands the writer an event without the state before
// it, of another room, or that is not one the room's servers signed.
func FuzzBackfillAnswer(f *testing.F) {
	fx := newFixture(f)
	good := make([]json.RawMessage, 0, len(fx.messages))
	for _, m := range fx.messages {
		good = append(good, m.Raw)
	}
	seed, _ := json.Marshal(good)
	f.Add(seed)
	seed, _ = json.Marshal([]json.RawMessage{fx.stranger.Raw, fx.forged, fx.messages[3].Raw})
	f.Add(seed)
	f.Add([]byte(`[{"type":"m.room.message"},1,"x",null,[]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var answer []json.RawMessage
		if json.Unmarshal(data, &answer) != nil {
			return
		}
		ff := &fakeFetcher{fx: fx, answer: answer}
		r := &recordingRooms{store: fx.store}
		fx.backfiller(ff, r).Fill(context.Background(), fx.room.ID, []storage.Event{{EventID: "$gap"}})
		for _, in := range r.got {
			switch {
			case in.Event == nil || in.StateBefore == nil:
				t.Fatalf("handed over without event or state: %+v", in)
			case in.Event.RoomID != fx.room.ID:
				t.Fatalf("event of room %s handed over", in.Event.RoomID)
			case in.Kind != rooms.Backfilled && in.Kind != rooms.Rejected:
				t.Fatalf("kind %v handed over", in.Kind)
			}
			if err := checks.VerifySignatures(context.Background(), fx.keys, "11", in.Event); err != nil {
				t.Fatalf("event %s handed over with bad signatures: %v", in.Event.ID, err)
			}
		}
	})
}
