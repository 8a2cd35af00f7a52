package inbound_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
)

const localName = "parley.test"

var (
	remote = remotetest.NewServer("remote.example")
	other  = remotetest.NewServer("other.example")
	evil   = remotetest.NewServer("evil.example")
)

const (
	alice = "@alice:remote.example"
	bob   = "@bob:remote.example"
	carol = "@carol:other.example"
	eve   = "@eve:evil.example"
	local = "@lou:parley.test"
)

// rooms is the local server's store for several rooms: each room is a
// remotetest.Store, and calls are routed by room ID. It is the pipeline's
// Source and Persister and the handler's RoomServers.
type rooms struct {
	mu     sync.Mutex
	stores map[string]*remotetest.Store
}

var (
	_ checks.Source       = (*rooms)(nil)
	_ checks.Persister    = (*rooms)(nil)
	_ inbound.RoomServers = (*rooms)(nil)
)

func (r *rooms) add(room *remotetest.Room) *remotetest.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stores == nil {
		r.stores = map[string]*remotetest.Store{}
	}
	s := remotetest.NewStore(room)
	r.stores[room.ID] = s
	return s
}

func (r *rooms) store(roomID string) *remotetest.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stores[roomID]
}

func (r *rooms) all() []*remotetest.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*remotetest.Store, 0, len(r.stores))
	for _, s := range r.stores {
		out = append(out, s)
	}
	return out
}

func (r *rooms) RoomVersion(ctx context.Context, roomID string) (string, error) {
	s := r.store(roomID)
	if s == nil {
		return "", fmt.Errorf("%w: %s", checks.ErrUnknownRoom, roomID)
	}
	return s.RoomVersion(ctx, roomID)
}

func (r *rooms) Events(ctx context.Context, ids []string) ([]checks.Stored, error) {
	out := make([]checks.Stored, len(ids))
	for _, s := range r.all() {
		got, err := s.Events(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, g := range got {
			if g.Event != nil {
				out[i] = g
			}
		}
	}
	return out, nil
}

func (r *rooms) StatesAfter(ctx context.Context, ids []string) ([]stateres.StateMap, error) {
	out := make([]stateres.StateMap, len(ids))
	for _, s := range r.all() {
		got, err := s.StatesAfter(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, g := range got {
			if g != nil {
				out[i] = g
			}
		}
	}
	return out, nil
}

func (r *rooms) Current(ctx context.Context, roomID string, keys []authrules.StateKey) (stateres.StateMap, []string, error) {
	s := r.store(roomID)
	if s == nil {
		return nil, nil, fmt.Errorf("%w: %s", checks.ErrUnknownRoom, roomID)
	}
	return s.Current(ctx, roomID, keys)
}

func (r *rooms) Persist(ctx context.Context, v *checks.Verdict) (int64, error) {
	s := r.store(v.Event.RoomID)
	if s == nil {
		return 0, fmt.Errorf("%w: %s", checks.ErrUnknownRoom, v.Event.RoomID)
	}
	return s.Persist(ctx, v)
}

// PersistBatch implements checks.BatchPersister: one room's verdicts in
// one write of its store.
func (r *rooms) PersistBatch(ctx context.Context, vs []*checks.Verdict) ([]int64, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	s := r.store(vs[0].Event.RoomID)
	if s == nil {
		return nil, fmt.Errorf("%w: %s", checks.ErrUnknownRoom, vs[0].Event.RoomID)
	}
	return s.PersistBatch(ctx, vs)
}

// ServerInRoom implements inbound.RoomServers from the current state.
func (r *rooms) ServerInRoom(ctx context.Context, roomID, server string) (bool, error) {
	s := r.store(roomID)
	if s == nil {
		return false, nil
	}
	for k, evID := range s.CurrentState() {
		if k.Type != "m.room.member" || pdu.Domain(k.StateKey) != server {
			continue
		}
		got, _ := s.Events(ctx, []string{evID})
		var c struct{ Membership string }
		if got[0].Event != nil && json.Unmarshal(got[0].Event.Content, &c) == nil && c.Membership == "join" {
			return true, nil
		}
	}
	return false, nil
}

// kind is how the local server holds evID, 0 when it does not.
func (r *rooms) kind(evID string) checks.Kind {
	for _, s := range r.all() {
		if k := s.Kind(evID); k != 0 {
			return k
		}
	}
	return 0
}

func (r *rooms) persists() int {
	n := 0
	for _, s := range r.all() {
		n += s.Persists()
	}
	return n
}

// writes counts the writes of every room's store (Persist and
// PersistBatch calls).
func (r *rooms) writes() int {
	n := 0
	for _, s := range r.all() {
		n += s.Writes()
	}
	return n
}

// env is the local server's /send endpoint over real HTTP, with the origin
// taken from a test header in place of X-Matrix.
type env struct {
	t     testing.TB
	rooms *rooms
	h     *inbound.Handler
	srv   *httptest.Server
	sinks *sinks
	// nRooms counts the rooms made, for distinct room IDs.
	nRooms int
}

const originHeader = "X-Test-Origin"

func testOrigin(r *http.Request) (string, bool) {
	o := r.Header.Get(originHeader)
	return o, o != ""
}

// newEnv starts the endpoint; edit cfg in with before the handler is made.
func newEnv(t testing.TB, with func(*inbound.Config)) *env {
	t.Helper()
	e := &env{t: t, rooms: &rooms{stores: map[string]*remotetest.Store{}}, sinks: &sinks{}}
	cfg := inbound.Config{
		ServerName:  localName,
		Origin:      testOrigin,
		Pipeline:    checks.New(e.rooms, remotetest.NewKeyring(remote, other, evil), e.rooms),
		Source:      e.rooms,
		RoomServers: e.rooms,
		EDUs:        e.sinks.all(),
		Limit:       inbound.Limits{OriginRate: -1},
	}
	if with != nil {
		with(&cfg)
	}
	e.h = inbound.New(cfg)
	r := chi.NewRouter()
	e.h.Mount(r)
	e.srv = httptest.NewServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

// pipeline is a pipeline over e's store, for setting rooms up.
func (e *env) pipeline() *checks.Pipeline {
	return checks.New(e.rooms, remotetest.NewKeyring(remote, other, evil), e.rooms)
}

// send PUTs a transaction from origin and returns the status and body.
func (e *env) send(origin, txnID string, pdus []json.RawMessage, edus []inbound.EDU) (int, []byte) {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"origin": origin, "origin_server_ts": 1, "pdus": orEmpty(pdus), "edus": edus})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.sendRaw(origin, txnID, body)
}

func orEmpty(p []json.RawMessage) []json.RawMessage {
	if p == nil {
		return []json.RawMessage{}
	}
	return p
}

func (e *env) sendRaw(origin, txnID string, body []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, e.srv.URL+"/_matrix/federation/v1/send/"+url.PathEscape(txnID), bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set(originHeader, origin)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// results sends a transaction that must succeed and returns its results.
func (e *env) results(origin, txnID string, events ...*pdu.Event) map[string]inbound.PDUResult {
	e.t.Helper()
	raws := make([]json.RawMessage, len(events))
	for i, ev := range events {
		raws[i] = ev.Raw
	}
	status, body := e.send(origin, txnID, raws, nil)
	if status != http.StatusOK {
		e.t.Fatalf("send %s = %d %s, want 200", txnID, status, body)
	}
	var resp struct {
		PDUs map[string]inbound.PDUResult `json:"pdus"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		e.t.Fatalf("send %s: answer %s: %v", txnID, body, err)
	}
	return resp.PDUs
}

// testRoom is a room built by the remote servers, created by alice, public,
// with bob joined; the local server holds all of it.
type testRoom struct {
	room  *remotetest.Room
	fork  *remotetest.Fork
	store *remotetest.Store
}

// newRoom builds a public room of version 11 on remote, holds it locally,
// and runs setup (more events on the fork, fed to the local server too).
func (e *env) newRoom(extra ...*remotetest.Server) *testRoom {
	e.t.Helper()
	return e.newRoomV("11", extra...)
}

// newRoomV is newRoom for a room of version 10, 11 or 12.
func (e *env) newRoomV(version string, extra ...*remotetest.Server) *testRoom {
	e.t.Helper()
	servers := append([]*remotetest.Server{remote, other}, extra...)
	r := remotetest.NewRoom(e.t, version, servers...)
	e.nRooms++
	create, pl := fmt.Sprintf(`{"room_version":%q}`, version), `{"users":{"@alice:remote.example":100}}`
	switch version {
	case "10":
		create = fmt.Sprintf(`{"creator":%q,"room_version":"10"}`, alice)
	case "12":
		pl = `{"users":{}}` // the creator has unlimited power and must not be listed
	}
	if !pdu.RoomIDFromCreate(version) {
		r.ID = fmt.Sprintf("!r%d:remote.example", e.nRooms)
	}
	f := r.Create(alice, create)
	tr := &testRoom{room: r, fork: f, store: e.rooms.add(r)}
	p := e.pipeline()
	remotetest.Feed(e.t, p, checks.Accepted, r.ByID[f.Prev[0]])
	remotetest.Feed(e.t, p, checks.Accepted,
		f.SendState(alice, "m.room.member", alice, `{"membership":"join"}`),
		f.SendState(alice, "m.room.power_levels", "", pl),
		f.SendState(alice, "m.room.join_rules", "", `{"join_rule":"public"}`),
		f.SendState(bob, "m.room.member", bob, `{"membership":"join"}`),
	)
	return tr
}

// hold feeds events to the local server directly, as if received before.
func (e *env) hold(events ...*pdu.Event) {
	e.t.Helper()
	remotetest.Feed(e.t, e.pipeline(), checks.Accepted, events...)
}

// sinks records the EDUs the handler dispatches.
type sinks struct {
	mu       sync.Mutex
	typing   []string
	receipts []inbound.Receipt
	presence []inbound.Presence
	toDevice []inbound.ToDevice
	devices  []string
	keys     []string
}

func (s *sinks) all() inbound.EDUSinks {
	return inbound.EDUSinks{Typing: s, Receipts: s, Presence: s, ToDevice: s, DeviceList: s, SigningKey: s}
}

func (s *sinks) RemoteTyping(_ context.Context, roomID, userID string, typing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.typing = append(s.typing, fmt.Sprintf("%s %s %v", roomID, userID, typing))
}

func (s *sinks) RemoteReceipt(_ context.Context, r inbound.Receipt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.receipts = append(s.receipts, r)
}

func (s *sinks) RemotePresence(_ context.Context, p inbound.Presence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presence = append(s.presence, p)
}

func (s *sinks) RemoteToDevice(_ context.Context, m inbound.ToDevice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toDevice = append(s.toDevice, m)
}

func (s *sinks) RemoteDeviceListUpdate(_ context.Context, userID, deviceID string, _ json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices = append(s.devices, userID+" "+deviceID)
}

func (s *sinks) RemoteSigningKeyUpdate(_ context.Context, userID string, _ json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, userID)
}

// peer is another server's federation API over real HTTP, serving
// get_missing_events, event_auth, event and state_ids from remotetest
// rooms. The local server reaches it through mautrix-go's federation
// client (ClientFetcher), whose requests a transport redirects here.
type peer struct {
	t   testing.TB
	srv *httptest.Server

	mu sync.Mutex
	// events by ID, from every room added.
	events map[string]*pdu.Event
	// stateBefore is what state_ids answers for an event.
	stateBefore map[string]stateres.StateMap
	calls       map[string]int
}

func newPeer(t testing.TB) *peer {
	p := &peer{t: t, events: map[string]*pdu.Event{}, stateBefore: map[string]stateres.StateMap{}, calls: map[string]int{}}
	r := chi.NewRouter()
	r.Post("/_matrix/federation/v1/get_missing_events/{roomId}", p.getMissingEvents)
	r.Get("/_matrix/federation/v1/event_auth/{roomId}/{eventId}", p.eventAuth)
	r.Get("/_matrix/federation/v1/event/{eventId}", p.event)
	r.Get("/_matrix/federation/v1/state_ids/{roomId}", p.stateIDs)
	r.Get("/_matrix/federation/v1/state/{roomId}", p.state)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") == "" {
			http.Error(w, `{"errcode":"M_UNAUTHORIZED"}`, http.StatusUnauthorized)
			return
		}
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// serve makes the peer serve every event of room.
func (p *peer) serve(room *remotetest.Room) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ev := range room.ByID {
		p.events[id] = ev
	}
}

func (p *peer) setStateBefore(evID string, s stateres.StateMap) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stateBefore[evID] = s
}

func (p *peer) count(endpoint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[endpoint]
}

func (p *peer) called(endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[endpoint]++
}

func (p *peer) get(id string) *pdu.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.events[id]
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (p *peer) getMissingEvents(w http.ResponseWriter, r *http.Request) {
	p.called("get_missing_events")
	var req struct {
		Earliest []string `json:"earliest_events"`
		Latest   []string `json:"latest_events"`
		Limit    int      `json:"limit"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Walk back from the latest events' prev events, breadth first,
	// stopping at the earliest events.
	seen := map[string]bool{}
	for _, id := range req.Earliest {
		seen[id] = true
	}
	var queue, out []string
	for _, id := range req.Latest {
		seen[id] = true
		if ev := p.get(id); ev != nil {
			queue = append(queue, ev.PrevEvents...)
		}
	}
	for len(queue) > 0 && len(out) < req.Limit {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		ev := p.get(id)
		if ev == nil {
			continue
		}
		out = append(out, id)
		queue = append(queue, ev.PrevEvents...)
	}
	slices.Reverse(out)
	events := make([]json.RawMessage, len(out))
	for i, id := range out {
		events[i] = p.get(id).Raw
	}
	writeJSON(w, map[string]any{"events": events})
}

// authChain is every event reachable through auth_events from ids, with
// the create event, which room version 12 leaves out of auth_events.
func (p *peer) authChain(roomID string, ids []string) []*pdu.Event {
	var out []*pdu.Event
	seen := map[string]bool{}
	queue := slices.Clone(ids)
	if create := p.get(pdu.CreateEventIDOf(roomID)); create != nil {
		queue = append(queue, create.ID)
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		if ev := p.get(id); ev != nil {
			out = append(out, ev)
			queue = append(queue, ev.AuthEvents...)
		}
	}
	return out
}

func (p *peer) eventAuth(w http.ResponseWriter, r *http.Request) {
	p.called("event_auth")
	ev := p.get(chi.URLParam(r, "eventId"))
	if ev == nil {
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	chain := p.authChain(ev.RoomID, ev.AuthEvents)
	raws := make([]json.RawMessage, len(chain))
	for i, e := range chain {
		raws[i] = e.Raw
	}
	writeJSON(w, map[string]any{"auth_chain": raws})
}

func (p *peer) event(w http.ResponseWriter, r *http.Request) {
	p.called("event")
	ev := p.get(chi.URLParam(r, "eventId"))
	if ev == nil {
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	writeJSON(w, map[string]any{"origin": remote.Name, "origin_server_ts": 1, "pdus": []json.RawMessage{ev.Raw}})
}

func (p *peer) stateIDs(w http.ResponseWriter, r *http.Request) {
	p.called("state_ids")
	evID := r.URL.Query().Get("event_id")
	p.mu.Lock()
	state, ok := p.stateBefore[evID]
	p.mu.Unlock()
	if !ok {
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	var ids []string
	for _, id := range state {
		ids = append(ids, id)
	}
	var chain []string
	for _, e := range p.authChain(chi.URLParam(r, "roomId"), ids) {
		chain = append(chain, e.ID)
	}
	writeJSON(w, map[string]any{"pdu_ids": ids, "auth_chain_ids": chain})
}

func (p *peer) state(w http.ResponseWriter, r *http.Request) {
	p.called("state")
	evID := r.URL.Query().Get("event_id")
	p.mu.Lock()
	state, ok := p.stateBefore[evID]
	p.mu.Unlock()
	if !ok {
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	var ids []string
	pdus := []json.RawMessage{}
	for _, id := range state {
		ids = append(ids, id)
		pdus = append(pdus, p.get(id).Raw)
	}
	chain := []json.RawMessage{}
	for _, e := range p.authChain(chi.URLParam(r, "roomId"), ids) {
		chain = append(chain, e.Raw)
	}
	writeJSON(w, map[string]any{"pdus": pdus, "auth_chain": chain})
}

// fetcher is the production ClientFetcher over a mautrix-go federation
// client whose requests (matrix-federation://server/...) go to the peer.
func (p *peer) fetcher() inbound.Fetcher {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key := &federation.SigningKey{
		ID:   id.NewKeyID(id.KeyAlgorithmEd25519, "t1"),
		Pub:  id.SigningKey(base64.RawStdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))),
		Priv: priv,
	}
	target, _ := url.Parse(p.srv.URL)
	client := &federation.Client{
		HTTP:              &http.Client{Transport: redirect{target: target, next: p.srv.Client().Transport}},
		ServerName:        localName,
		Key:               key,
		UserAgent:         "parley-test",
		ResponseSizeLimit: 16 << 20,
	}
	return inbound.ClientFetcher{Client: client}
}

type redirect struct {
	target *url.URL
	next   http.RoundTripper
}

func (rd redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = rd.target.Scheme, rd.target.Host
	return rd.next.RoundTrip(req)
}

// gapFiller is a test double of the storage's GapFiller: it stores the
// prev event with the state given, as a live event that is not a forward
// extremity (the remotetest store's soft-failed kind), without checking
// it. The real one must run checks 1–4 against the state.
type gapFiller struct{ rooms *rooms }

func (g *gapFiller) AcceptWithState(ctx context.Context, roomID string, raw []byte, stateBefore checks.StateMap) error {
	version, err := g.rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return err
	}
	ev, err := pdu.Parse(raw, version)
	if err != nil {
		return err
	}
	for range 5 {
		_, ext, err := g.rooms.Current(ctx, roomID, nil)
		if err != nil {
			return err
		}
		_, err = g.rooms.Persist(ctx, &checks.Verdict{Raw: ev.Raw, Event: ev, Kind: checks.SoftFailed, StateBefore: stateBefore, ExtremitiesSeen: ext})
		if !errors.Is(err, checks.ErrExtremitiesMoved) {
			return err
		}
	}
	return checks.ErrTooManyAttempts
}
