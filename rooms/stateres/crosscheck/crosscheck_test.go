package crosscheck

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
)

var update = flag.Bool("update", false, "rewrite ../testdata/crosscheck.json from gomatrixserverlib's answers")

const vectorsPath = "../testdata/crosscheck.json"

// Vector is one forked room with gomatrixserverlib's answers; the same
// type is decoded by stateres' TestCrossCheckVectors.
type Vector struct {
	Name string        `json:"name"`
	Sets [][][3]string `json:"sets"` // per set: (type, state key, event ID)
	V2   [][3]string   `json:"v2"`
}

// File is the vectors file: every event of every vector once (room
// version 11 PDUs), then the vectors.
type File struct {
	Events  []json.RawMessage `json:"events"`
	Vectors []Vector          `json:"vectors"`
}

const (
	alice = "@alice:example.org"
	mod   = "@mod:example.org"
	bob   = "@bob:example.org"
	carol = "@carol:other.org"
)

func testKey(server string) *pdu.SigningKey {
	seed := sha256.Sum256([]byte("parley stateres crosscheck key for " + server))
	return &pdu.SigningKey{ServerName: server, KeyID: "ed25519:test", Private: ed25519.NewKeyFromSeed(seed[:])}
}

type room struct {
	t      *testing.T
	events map[string]*pdu.Event
	order  []string
	ts     int64
}

type fork struct {
	r     *room
	state stateres.StateMap
	prev  []string
	depth int64
}

func (f *fork) clone() *fork {
	s := make(stateres.StateMap, len(f.state))
	for k, v := range f.state {
		s[k] = v
	}
	return &fork{r: f.r, state: s, prev: slices.Clone(f.prev), depth: f.depth}
}

// add builds an event on f with auth events from f's state; checked says
// whether it must pass the auth rules there (random forks skip that).
func (f *fork) add(checked bool, sender, typ, sk, content string) *pdu.Event {
	f.r.t.Helper()
	p := pdu.Proto{
		RoomID: "!room:example.org", Sender: sender, Type: typ, StateKey: &sk, Content: json.RawMessage(content),
		PrevEvents: slices.Clone(f.prev), AuthEvents: []string{}, Depth: f.depth + 1, OriginServerTS: f.r.ts,
	}
	if p.PrevEvents == nil {
		p.PrevEvents = []string{}
	}
	f.r.ts++
	auth := map[authrules.StateKey]*pdu.Event{}
	for _, k := range authrules.Needed(typ, &sk, sender, []byte(content)) {
		if id, ok := f.state[k]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
			auth[k] = f.r.events[id]
		}
	}
	ev, err := pdu.Build(p, "11", testKey(pdu.Domain(sender)))
	if err != nil {
		f.r.t.Fatal(err)
	}
	if checked {
		if err := authrules.Check("11", ev, auth); err != nil {
			f.r.t.Fatalf("setup: %s %s by %s: %v", typ, content, sender, err)
		}
	}
	f.r.events[ev.ID] = ev
	f.r.order = append(f.r.order, ev.ID)
	f.prev, f.depth = []string{ev.ID}, f.depth+1
	f.state[authrules.StateKey{Type: typ, StateKey: sk}] = ev.ID
	return ev
}

func newRoom(t *testing.T) *fork {
	f := &fork{r: &room{t: t, events: map[string]*pdu.Event{}, ts: 1_700_000_000_000}, state: stateres.StateMap{}}
	f.add(true, alice, "m.room.create", "", `{"room_version":"11"}`)
	f.add(true, alice, "m.room.member", alice, `{"membership":"join"}`)
	f.add(true, alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50}}`)
	f.add(true, alice, "m.room.join_rules", "", `{"join_rule":"public"}`)
	f.add(true, mod, "m.room.member", mod, `{"membership":"join"}`)
	f.add(true, bob, "m.room.member", bob, `{"membership":"join"}`)
	return f
}

var ops = []struct{ sender, typ, sk, content string }{
	{alice, "m.room.topic", "", `{"topic":"a"}`},
	{mod, "m.room.topic", "", `{"topic":"m"}`},
	{bob, "m.room.topic", "", `{"topic":"b"}`},
	{alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`},
	{mod, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":50}}`},
	{mod, "m.room.member", bob, `{"membership":"ban"}`},
	{alice, "m.room.member", mod, `{"membership":"leave"}`},
	{bob, "m.room.member", bob, `{"membership":"leave"}`},
	{carol, "m.room.member", carol, `{"membership":"join"}`},
	{alice, "m.room.join_rules", "", `{"join_rule":"invite"}`},
	{mod, "m.room.join_rules", "", `{"join_rule":"public"}`},
	{bob, "m.room.member", bob, `{"membership":"join","displayname":"Bob"}`},
	{mod, "m.room.name", "", `{"name":"n"}`},
}

// scenarios builds the vectors' rooms: the classic conflicts, then seeded
// random forks (events added without checking them on their own fork).
func scenarios(t *testing.T) []struct {
	name  string
	r     *room
	forks []*fork
} {
	type sc = struct {
		name  string
		r     *room
		forks []*fork
	}
	var out []sc
	classic := []struct {
		name string
		a, b [][4]string
	}{
		{"ban against power levels", [][4]string{{mod, "m.room.member", bob, `{"membership":"ban"}`}}, [][4]string{{alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`}}},
		{"join rules against join", [][4]string{{alice, "m.room.join_rules", "", `{"join_rule":"invite"}`}}, [][4]string{{carol, "m.room.member", carol, `{"membership":"join"}`}}},
		{"topic race", [][4]string{{mod, "m.room.topic", "", `{"topic":"m"}`}}, [][4]string{{alice, "m.room.topic", "", `{"topic":"a"}`}}},
		{"demoted while acting", [][4]string{{alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`}}, [][4]string{{mod, "m.room.topic", "", `{"topic":"m"}`}}},
		{"ban against own change", [][4]string{{mod, "m.room.member", bob, `{"membership":"ban"}`}}, [][4]string{{bob, "m.room.member", bob, `{"membership":"join","displayname":"Bob"}`}}},
	}
	for _, c := range classic {
		base := newRoom(t)
		a, b := base.clone(), base.clone()
		for _, e := range c.a {
			a.add(true, e[0], e[1], e[2], e[3])
		}
		for _, e := range c.b {
			b.add(true, e[0], e[1], e[2], e[3])
		}
		out = append(out, sc{c.name, base.r, []*fork{a, b}})
	}
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 42))
		base := newRoom(t)
		forks := []*fork{base.clone(), base.clone(), base.clone()}[:2+rng.IntN(2)]
		for range 2 + rng.IntN(8) {
			f := forks[rng.IntN(len(forks))]
			op := ops[rng.IntN(len(ops))]
			if rng.IntN(5) == 0 {
				base.r.ts-- // a repeated timestamp
			}
			f.add(false, op.sender, op.typ, op.sk, op.content)
		}
		out = append(out, sc{fmt.Sprintf("random %d", seed), base.r, forks})
	}
	return out
}

func triples(s stateres.StateMap) [][3]string {
	out := make([][3]string, 0, len(s))
	for k, v := range s {
		out = append(out, [3]string{k.Type, k.StateKey, v})
	}
	slices.SortFunc(out, func(a, b [3]string) int {
		return slices.Compare(a[:], b[:])
	})
	return out
}

// gmslResolve asks gomatrixserverlib for the resolution with algo.
func gmslResolve(t *testing.T, algo gmsl.StateResAlgorithm, r *room, forks []*fork) stateres.StateMap {
	t.Helper()
	verImpl := gmsl.MustGetRoomVersion(gmsl.RoomVersionV11)
	pdus := map[string]gmsl.PDU{}
	var all []gmsl.PDU
	for _, id := range r.order {
		p, err := verImpl.NewEventFromTrustedJSON(r.events[id].Raw, false)
		if err != nil {
			t.Fatalf("gomatrixserverlib cannot parse %s: %v", r.events[id].Raw, err)
		}
		if p.EventID() != id {
			t.Fatalf("gomatrixserverlib computes ID %s for %s", p.EventID(), id)
		}
		pdus[id] = p
		all = append(all, p)
	}
	sets := make([][]gmsl.PDU, len(forks))
	for i, f := range forks {
		for _, tr := range triples(f.state) {
			sets[i] = append(sets[i], pdus[tr[2]])
		}
	}
	userID := func(_ spec.RoomID, s spec.SenderID) (*spec.UserID, error) { return spec.NewUserID(string(s), true) }
	res := gmsl.ResolveStateConflictsV2New(algo, sets, all, userID, func(string) bool { return false })
	out := stateres.StateMap{}
	for _, p := range res {
		out[authrules.StateKey{Type: p.Type(), StateKey: *p.StateKey()}] = p.EventID()
	}
	return out
}

// TestVectors computes gomatrixserverlib's answers for every scenario,
// compares its v2 answers with Parley's stateres.Resolve directly, and
// checks (or with -update rewrites) the vectors file that stateres' own
// tests replay.
func TestVectors(t *testing.T) {
	var file File
	seen := map[string]bool{}
	for _, sc := range scenarios(t) {
		v := Vector{Name: sc.name}
		for _, id := range sc.r.order {
			if !seen[id] {
				seen[id] = true
				file.Events = append(file.Events, sc.r.events[id].Raw)
			}
		}
		sets := make([]stateres.StateMap, len(sc.forks))
		for i, f := range sc.forks {
			sets[i] = f.state
			v.Sets = append(v.Sets, triples(f.state))
		}
		// Only v2: gomatrixserverlib's v2.1 path (ResolveStateConflictsV2New
		// with StateResV2_1, marked "WIP: Untested" in its source) drops
		// conflicted events that pass auth against their own auth events;
		// in the plain "topic race" it returns no topic at all. It is no
		// reference for v2.1 at this version.
		v.V2 = triples(gmslResolve(t, gmsl.StateResV2, sc.r, sc.forks))
		file.Vectors = append(file.Vectors, v)

		got, err := stateres.Resolve(context.Background(), "11", sets, loader(sc.r.events))
		if err != nil {
			t.Errorf("%s: Resolve = %v", sc.name, err)
			continue
		}
		switch a, b := triples(got), v.V2; {
		case !slices.Equal(a, b) && !KnownV2Differences[sc.name]:
			t.Errorf("%s: v2 answers differ\nparley: %v\ngmsl:   %v", sc.name, a, b)
		case slices.Equal(a, b) && KnownV2Differences[sc.name]:
			t.Errorf("%s: v2 answers now agree; drop it from KnownV2Differences", sc.name)
		}
	}
	// One event or vector per line keeps the file small and its diffs
	// readable.
	var buf bytes.Buffer
	buf.WriteString("{\"events\":[\n")
	for i, ev := range file.Events {
		if i > 0 {
			buf.WriteString(",\n")
		}
		buf.Write(ev)
	}
	buf.WriteString("\n],\"vectors\":[\n")
	for i, v := range file.Vectors {
		if i > 0 {
			buf.WriteString(",\n")
		}
		line, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
	}
	buf.WriteString("\n]}\n")
	data := buf.Bytes()
	if *update {
		if err := os.WriteFile(vectorsPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(old, data) {
		t.Errorf("%s is stale: run (cd rooms/stateres/crosscheck && go test -update)", vectorsPath)
	}
}

// KnownV2Differences are the vectors where gomatrixserverlib's v2 answer
// is not Parley's, all among the random forks (whose events need not pass
// auth on their own fork); every classic scenario agrees. Each was traced
// by hand, and in each Parley's answer is what the spec's steps give:
//   - "random 7", "random 16", "random 20", "random 21", "random 59": the
//     order of the power events. Parley runs Kahn's algorithm forwards from
//     the oldest events, smallest (power desc, origin_server_ts, event ID)
//     first, as the spec and Synapse do; gomatrixserverlib runs it
//     backwards from the newest power events, so ties between unrelated
//     events fall the other way (in "random 59" a ban is then checked
//     before, not after, a power levels change that protects its target).
//   - "random 12": bob left twice, once on each fork. Mainline order checks
//     the older leave first; the newer one is then checked against the
//     partially resolved state, where bob has already left, and is
//     refused. gomatrixserverlib keeps the newer leave.
//   - "random 11": alice kicks the mod; the mod's join is the kick's auth
//     event, so it is applied first and the kick after it, and the kick
//     passes. gomatrixserverlib ends with the join.
//   - "random 53": bob's display name change is in the auth difference
//     (an auth event of a refused ban), so it is sorted with the power
//     events, passes, and stays. gomatrixserverlib only pulls conflicted
//     events, not auth-difference ones, into the power events' graph, and
//     ends with bob's first join.
//
// The same names are in stateres' TestCrossCheckVectors.
var KnownV2Differences = map[string]bool{
	"random 7": true, "random 11": true, "random 12": true, "random 16": true,
	"random 20": true, "random 21": true, "random 53": true, "random 59": true,
}

type loader map[string]*pdu.Event

func (l loader) Events(_ context.Context, ids []string) ([]*pdu.Event, error) {
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		out[i] = l[id]
	}
	return out, nil
}
