package authrules

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// testKey returns a deterministic signing key for server.
func testKey(server string) *pdu.SigningKey {
	seed := sha256.Sum256([]byte("parley authrules test key for " + server))
	return &pdu.SigningKey{ServerName: server, KeyID: "ed25519:test", Private: ed25519.NewKeyFromSeed(seed[:])}
}

const (
	alice = "@alice:example.org" // creator, power 100
	mod   = "@mod:example.org"   // power 50
	bob   = "@bob:example.org"   // power 0, joined
	carol = "@carol:example.org" // not in the room
	dave  = "@dave:other.org"    // remote, not in the room
)

// room is a small in-memory room: real signed events, current state, and a
// linear DAG, enough to build events the way a server would.
type room struct {
	t       testing.TB
	version string
	id      string
	state   map[StateKey]*pdu.Event
	create  *pdu.Event
	last    string
	depth   int64
	log     []*pdu.Event
}

// newRoom makes a room created by alice, with power levels giving alice
// 100 and mod 50 (everything else at spec defaults), public join rules, and
// alice, mod and bob joined. In version 12 alice is a creator with
// unlimited power instead, and the power levels do not list her.
func newRoom(t testing.TB, version string) *room {
	return newRoomWith(t, version, `{"room_version":"`+version+`"}`)
}

// newRoomWith is newRoom with the given create content (version 10 gets
// its creator added).
func newRoomWith(t testing.TB, version, createContent string) *room {
	r := &room{t: t, version: version, id: "!room:example.org", state: map[StateKey]*pdu.Event{}}
	if version == "10" {
		createContent = `{"creator":"@alice:example.org","room_version":"10"}`
	}
	users := `{"users":{"@alice:example.org":100,"@mod:example.org":50}}`
	if pdu.RoomIDFromCreate(version) {
		r.id = "" // the create event names the room
		users = `{"users":{"@mod:example.org":50}}`
	}
	r.create = r.send(alice, "m.room.create", "", createContent)
	r.id = r.create.RoomID
	r.send(alice, "m.room.member", alice, `{"membership":"join"}`)
	r.send(alice, "m.room.power_levels", "", users)
	r.send(alice, "m.room.join_rules", "", `{"join_rule":"public"}`)
	r.send(mod, "m.room.member", mod, `{"membership":"join"}`)
	r.send(bob, "m.room.member", bob, `{"membership":"join"}`)
	return r
}

// proto prepares an event as a server would: auth events from current
// state, the latest event as parent. stateKey "" with a non-state type
// means no state key; use state() for the empty state key.
func (r *room) proto(sender, typ string, stateKey *string, content string) pdu.Proto {
	p := pdu.Proto{
		RoomID: r.id, Sender: sender, Type: typ, StateKey: stateKey, Content: json.RawMessage(content),
		PrevEvents: []string{}, AuthEvents: []string{}, Depth: r.depth + 1, OriginServerTS: 1700000000000 + r.depth,
	}
	if r.last != "" {
		p.PrevEvents = []string{r.last}
	}
	for _, k := range Needed(typ, stateKey, sender, []byte(content)) {
		if k.Type == "m.room.create" && pdu.RoomIDFromCreate(r.version) {
			continue // implied by the room ID
		}
		if ev := r.state[k]; ev != nil {
			p.AuthEvents = append(p.AuthEvents, ev.ID)
		}
	}
	if typ == "m.room.redaction" {
		p.Redacts = r.log[len(r.log)-1].ID
	}
	return p
}

func (r *room) build(p pdu.Proto) *pdu.Event {
	r.t.Helper()
	ev, err := pdu.Build(p, r.version, testKey(pdu.Domain(p.Sender)))
	if err != nil {
		r.t.Fatalf("Build(%s %s) = %v", p.Type, p.Content, err)
	}
	return ev
}

// stateKeyFor maps the tables' convention: "" for a state type means the
// empty state key, "-" means no state key at all.
func stateKeyFor(typ, sk string) *string {
	if sk == "-" || (sk == "" && !isStateType(typ)) {
		return nil
	}
	return &sk
}

func isStateType(typ string) bool {
	switch typ {
	case "m.room.message", "m.room.redaction", "m.reaction", "org.example.message":
		return false
	}
	return true
}

// authFor is the auth map for ev against the room's current state.
func (r *room) authFor(ev *pdu.Event) map[StateKey]*pdu.Event {
	out := map[StateKey]*pdu.Event{}
	for _, k := range Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content) {
		if s := r.state[k]; s != nil {
			out[k] = s
		}
	}
	return out
}

// apply adds ev to the DAG and, for state events, to the current state.
func (r *room) apply(ev *pdu.Event) *pdu.Event {
	r.last, r.depth = ev.ID, r.depth+1
	r.log = append(r.log, ev)
	if ev.IsState() {
		r.state[StateKey{ev.Type, *ev.StateKey}] = ev
	}
	return ev
}

// send builds, checks (it must be allowed) and applies an event.
func (r *room) send(sender, typ, stateKey, content string) *pdu.Event {
	r.t.Helper()
	ev := r.build(r.proto(sender, typ, stateKeyFor(typ, stateKey), content))
	if err := Check(r.version, ev, r.authFor(ev)); err != nil {
		r.t.Fatalf("setup: Check(%s %s by %s) = %v, want nil", typ, content, sender, err)
	}
	return r.apply(ev)
}

func (r *room) String() string { return fmt.Sprintf("v%s room with %d events", r.version, len(r.log)) }
