// Package remotetest plays other Matrix servers for tests: each Server has
// its own server name and ed25519 key, and builds signed PDUs as that
// server would send them. Room and Fork build a room's DAG, with forks and
// merges; Store is an in-memory stand-in for the room store behind the
// inbound pipeline's Source and Persister.
//
// It is for tests only: it fails the test it is given on any setup error.
// It must not be imported by production code.
package remotetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"maunium.net/go/mautrix/crypto/canonicaljson"
)

// Server is another homeserver: a name and a signing key.
type Server struct {
	Name string
	Key  *pdu.SigningKey
}

// NewServer returns the server name with a key derived from the name, so
// event IDs are the same on every run.
func NewServer(name string) *Server {
	seed := sha256.Sum256([]byte("parley remotetest key for " + name))
	return &Server{Name: name, Key: &pdu.SigningKey{ServerName: name, KeyID: "ed25519:rt1", Private: ed25519.NewKeyFromSeed(seed[:])}}
}

// Keyring is a Keys for the inbound pipeline that knows the keys of the
// servers it was given, valid at all times.
type Keyring map[string]map[string]ed25519.PublicKey

// NewKeyring returns a Keyring holding the servers' keys.
func NewKeyring(servers ...*Server) Keyring {
	k := Keyring{}
	for _, s := range servers {
		k.Add(s.Name, s.Key)
	}
	return k
}

// Add makes key known as server's.
func (k Keyring) Add(server string, key *pdu.SigningKey) {
	if k[server] == nil {
		k[server] = map[string]ed25519.PublicKey{}
	}
	k[server][key.KeyID] = key.Public()
}

// VerifyKey implements inbound.Keys.
func (k Keyring) VerifyKey(_ context.Context, server, keyID string, _ int64, _ string) (ed25519.PublicKey, error) {
	if pub, ok := k[server][keyID]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("remotetest: no key %s for %s", keyID, server)
}

// Forge hashes and signs fields (top-level keys to JSON values, without
// hashes and signatures) as s would, for PDUs pdu.Build refuses to make:
// extra keys such as "origin", odd shapes. Values must be canonical JSON
// once re-encoded; the result is canonical.
func (s *Server) Forge(t testing.TB, roomVersion string, fields map[string]any) []byte {
	t.Helper()
	enc := func(v any) []byte {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("remotetest: Forge: %v", err)
		}
		return canonicaljson.CanonicalJSONAssumeValid(raw) //nolint:staticcheck
	}
	all := make(map[string]json.RawMessage, len(fields)+2)
	for k, v := range fields {
		all[k] = enc(v)
	}
	sum := sha256.Sum256(enc(all))
	all["hashes"] = enc(map[string]string{"sha256": base64.RawStdEncoding.EncodeToString(sum[:])})

	// The signature covers the redacted event without signatures.
	typ, _ := fields["type"].(string)
	kept := map[string]json.RawMessage{}
	for k, v := range all {
		switch k {
		case "type", "room_id", "sender", "state_key", "hashes", "depth", "prev_events", "auth_events", "origin_server_ts":
			kept[k] = v
		case "content":
			kept[k] = pdu.RedactContent(typ, v, roomVersion)
		case "origin", "membership", "prev_state":
			if roomVersion == "10" {
				kept[k] = v
			}
		}
	}
	sig := ed25519.Sign(s.Key.Private, enc(kept))
	all["signatures"] = enc(map[string]map[string]string{s.Name: {s.Key.KeyID: base64.RawStdEncoding.EncodeToString(sig)}})
	return enc(all)
}

// Room is a room's DAG as the remote servers build it. It is a
// stateres.Loader over every event built. Not safe for concurrent use.
type Room struct {
	T       testing.TB
	Version string
	// ID is the room ID; for version 12, set by Create.
	ID string
	// ByID holds every event built.
	ByID    map[string]*pdu.Event
	servers map[string]*Server
	ts      int64
}

// NewRoom returns an empty room of version whose events the servers sign
// (each sender's own server). Before version 12 the room ID is on the
// first server.
func NewRoom(t testing.TB, version string, servers ...*Server) *Room {
	r := &Room{T: t, Version: version, ByID: map[string]*pdu.Event{}, servers: map[string]*Server{}, ts: 1_700_000_000_000}
	for _, s := range servers {
		r.servers[s.Name] = s
	}
	if !pdu.RoomIDFromCreate(version) {
		r.ID = "!dag:" + servers[0].Name
	}
	return r
}

// Events implements stateres.Loader.
func (r *Room) Events(_ context.Context, ids []string) ([]*pdu.Event, error) {
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		out[i] = r.ByID[id]
	}
	return out, nil
}

// Fork is one branch of the room: its tip and the state after it.
type Fork struct {
	Room  *Room
	State stateres.StateMap
	Prev  []string
	Depth int64
}

// Create builds the create event by creator with content and returns the
// fork at it.
func (r *Room) Create(creator, content string) *Fork {
	f := &Fork{Room: r, State: stateres.StateMap{}}
	ev := f.build(pdu.Proto{RoomID: r.ID, Sender: creator, Type: "m.room.create", StateKey: new(string), Content: json.RawMessage(content)})
	if r.ID == "" {
		r.ID = ev.RoomID
	}
	f.Apply(ev)
	return f
}

// Clone returns an independent copy of f, to grow a second branch.
func (f *Fork) Clone() *Fork {
	return &Fork{Room: f.Room, State: maps(f.State), Prev: slices.Clone(f.Prev), Depth: f.Depth}
}

func maps(s stateres.StateMap) stateres.StateMap {
	out := make(stateres.StateMap, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

// Merge returns a fork whose tip is all the forks' tips, with their states
// resolved as the room version says.
func Merge(forks ...*Fork) *Fork {
	r := forks[0].Room
	r.T.Helper()
	m := &Fork{Room: r}
	var sets []stateres.StateMap
	for _, f := range forks {
		m.Prev = append(m.Prev, f.Prev...)
		m.Depth = max(m.Depth, f.Depth)
		sets = append(sets, f.State)
	}
	state, err := stateres.Resolve(context.Background(), r.Version, sets, r)
	if err != nil {
		r.T.Fatalf("remotetest: Merge: %v", err)
	}
	m.State = state
	return m
}

// SendState builds a state event on f, requires the auth rules to allow it
// against f's state, applies it and returns it.
func (f *Fork) SendState(sender, typ, stateKey, content string) *pdu.Event {
	f.Room.T.Helper()
	ev := f.BuildState(sender, typ, stateKey, content)
	f.mustAllow(ev)
	f.Apply(ev)
	return ev
}

// SendMessage sends an m.room.message with body on f, like SendState.
func (f *Fork) SendMessage(sender, body string) *pdu.Event {
	f.Room.T.Helper()
	ev := f.BuildMessage(sender, body)
	f.mustAllow(ev)
	f.Apply(ev)
	return ev
}

// BuildState builds a state event on f, with auth events from f's state,
// without checking or applying it.
func (f *Fork) BuildState(sender, typ, stateKey, content string) *pdu.Event {
	f.Room.T.Helper()
	return f.Build(pdu.Proto{Sender: sender, Type: typ, StateKey: &stateKey, Content: json.RawMessage(content)})
}

// BuildMessage builds an m.room.message on f without checking or applying.
func (f *Fork) BuildMessage(sender, body string) *pdu.Event {
	f.Room.T.Helper()
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return f.Build(pdu.Proto{Sender: sender, Type: "m.room.message", Content: content})
}

// Build fills p's room ID, prev events, depth and timestamp from f, its
// auth events (when nil) from f's state, and signs it with the sender's
// server's key. It neither checks nor applies the event.
func (f *Fork) Build(p pdu.Proto) *pdu.Event {
	f.Room.T.Helper()
	if p.RoomID == "" {
		p.RoomID = f.Room.ID
	}
	if p.AuthEvents == nil {
		p.AuthEvents = []string{}
		for _, k := range authrules.Needed(p.Type, p.StateKey, p.Sender, p.Content) {
			if k.Type == "m.room.create" && pdu.RoomIDFromCreate(f.Room.Version) {
				continue // the room ID names it
			}
			if id, ok := f.State[k]; ok {
				p.AuthEvents = append(p.AuthEvents, id)
			}
		}
	}
	return f.build(p)
}

func (f *Fork) build(p pdu.Proto) *pdu.Event {
	r := f.Room
	r.T.Helper()
	if p.PrevEvents == nil {
		p.PrevEvents = slices.Clone(f.Prev)
	}
	if p.AuthEvents == nil {
		p.AuthEvents = []string{}
	}
	if p.Depth == 0 {
		p.Depth = f.Depth + 1
	}
	if p.OriginServerTS == 0 {
		p.OriginServerTS = r.ts
		r.ts++
	}
	s := r.servers[pdu.Domain(p.Sender)]
	if s == nil {
		r.T.Fatalf("remotetest: no server %s for sender %s", pdu.Domain(p.Sender), p.Sender)
	}
	ev, err := pdu.Build(p, r.Version, s.Key)
	if err != nil {
		r.T.Fatalf("remotetest: Build(%s by %s): %v", p.Type, p.Sender, err)
	}
	r.ByID[ev.ID] = ev
	return ev
}

// AuthFor returns ev's auth events as f's state holds them.
func (f *Fork) AuthFor(ev *pdu.Event) map[authrules.StateKey]*pdu.Event {
	out := map[authrules.StateKey]*pdu.Event{}
	for _, k := range authrules.Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content) {
		if id, ok := f.State[k]; ok {
			out[k] = f.Room.ByID[id]
		}
	}
	return out
}

func (f *Fork) mustAllow(ev *pdu.Event) {
	f.Room.T.Helper()
	if err := authrules.Check(f.Room.Version, ev, f.AuthFor(ev)); err != nil {
		f.Room.T.Fatalf("remotetest: %s by %s not allowed on its fork: %v", ev.Type, ev.Sender, err)
	}
}

// Apply makes ev f's tip and, for a state event, part of f's state.
func (f *Fork) Apply(ev *pdu.Event) {
	f.Prev, f.Depth = []string{ev.ID}, max(f.Depth, ev.Depth)
	if ev.IsState() {
		f.State[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
	}
}
