package stateres

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

const (
	alice = "@alice:example.org" // creator, power 100
	mod   = "@mod:example.org"   // power 50
	bob   = "@bob:example.org"   // power 0, joined
	carol = "@carol:other.org"   // not in the room at the start
)

var keyCache = map[string]*pdu.SigningKey{}

// testKey returns a deterministic signing key for server, so event IDs are
// stable between runs.
func testKey(server string) *pdu.SigningKey {
	if k := keyCache[server]; k != nil {
		return k
	}
	seed := sha256.Sum256([]byte("parley stateres test key for " + server))
	k := &pdu.SigningKey{ServerName: server, KeyID: "ed25519:test", Private: ed25519.NewKeyFromSeed(seed[:])}
	keyCache[server] = k
	return k
}

// dag is a room's event graph in memory, and the Loader the tests use.
type dag struct {
	t       testing.TB
	version string
	roomID  string
	events  map[string]*pdu.Event
	ts      int64 // origin_server_ts of the next event
	calls   int   // Events calls, to see batching
}

func (d *dag) Events(_ context.Context, ids []string) ([]*pdu.Event, error) {
	d.calls++
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		out[i] = d.events[id]
	}
	return out, nil
}

// fork is one branch's view: its state and its tip.
type fork struct {
	d     *dag
	state StateMap
	prev  []string
	depth int64
}

func (f *fork) clone() *fork {
	return &fork{d: f.d, state: copyState(f.state, 0), prev: append([]string(nil), f.prev...), depth: f.depth}
}

// newRoom makes a version-11 room (event format and auth rules) created by
// alice with power levels alice 100 and mod 50, public join rules, and
// alice, mod and bob joined. It returns the fork at its tip.
func newRoom(t testing.TB) *fork {
	return newRoomWith(t, `{"room_version":"11"}`)
}

// newRoomWith is newRoom with the given create event content.
func newRoomWith(t testing.TB, createContent string) *fork {
	d := &dag{t: t, version: "11", roomID: "!room:example.org", events: map[string]*pdu.Event{}, ts: 1_700_000_000_000}
	lastDAG = d
	f := &fork{d: d, state: StateMap{}}
	f.send(alice, "m.room.create", "", createContent)
	f.send(alice, "m.room.member", alice, `{"membership":"join"}`)
	f.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50}}`)
	f.send(alice, "m.room.join_rules", "", `{"join_rule":"public"}`)
	f.send(mod, "m.room.member", mod, `{"membership":"join"}`)
	f.send(bob, "m.room.member", bob, `{"membership":"join"}`)
	return f
}

// send builds an event on f as a server would (auth events from f's state,
// f's tip as parent), requires it to pass the auth rules against f's state,
// and applies it.
func (f *fork) send(sender, typ, stateKey, content string) *pdu.Event {
	f.d.t.Helper()
	ev := f.build(sender, typ, stateKey, content)
	if err := authrules.Check(f.d.version, ev, f.authFor(ev)); err != nil {
		f.d.t.Fatalf("setup: %s %s by %s not allowed on its fork: %v", typ, content, sender, err)
	}
	f.apply(ev)
	return ev
}

func (f *fork) build(sender, typ, stateKey, content string) *pdu.Event {
	f.d.t.Helper()
	sk := stateKey
	p := pdu.Proto{
		RoomID: f.d.roomID, Sender: sender, Type: typ, StateKey: &sk, Content: json.RawMessage(content),
		PrevEvents: append([]string{}, f.prev...), AuthEvents: []string{}, Depth: f.depth + 1, OriginServerTS: f.d.ts,
	}
	f.d.ts++
	for _, k := range authrules.Needed(typ, &sk, sender, []byte(content)) {
		if k.Type == "m.room.create" && pdu.RoomIDFromCreate(f.d.version) {
			continue // implied by the room ID
		}
		if id, ok := f.state[k]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	ev, err := pdu.Build(p, f.d.version, testKey(pdu.Domain(sender)))
	if err != nil {
		f.d.t.Fatalf("Build(%s %s) = %v", typ, content, err)
	}
	f.d.events[ev.ID] = ev
	return ev
}

func (f *fork) authFor(ev *pdu.Event) map[authrules.StateKey]*pdu.Event {
	out := map[authrules.StateKey]*pdu.Event{}
	for _, k := range authrules.Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content) {
		if id, ok := f.state[k]; ok {
			out[k] = f.d.events[id]
		}
	}
	return out
}

func (f *fork) apply(ev *pdu.Event) {
	f.prev, f.depth = []string{ev.ID}, f.depth+1
	f.state[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
}

func key(typ, sk string) authrules.StateKey { return authrules.StateKey{Type: typ, StateKey: sk} }

var (
	v2  = params{authVersion: "11"}
	v21 = params{authVersion: "11", v21: true}
)
