package inbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
)

var (
	remote = remotetest.NewServer("remote.example")
	other  = remotetest.NewServer("other.example")
)

const (
	alice = "@alice:remote.example" // creator, power 100 (unlimited in v12)
	mod   = "@mod:remote.example"   // power 50
	bob   = "@bob:remote.example"   // power 0, joined
	carol = "@carol:other.example"  // not in the room at the start
)

// versions are the room versions every pipeline test runs on.
var versions = []string{"10", "11", "12"}

// fixture is a room built by the remote servers and held by an in-memory
// store that has accepted its first events through the pipeline.
type fixture struct {
	t     testing.TB
	room  *remotetest.Room
	base  *remotetest.Fork // the fork at the tip of what the store holds
	store *remotetest.Store
	p     *inbound.Pipeline
	ev    map[string]*pdu.Event // the setup events by name
}

// newFixture builds a public room of version created by alice, with mod at
// 50, and alice, mod and bob joined, and accepts each event through the
// pipeline.
func newFixture(t testing.TB, version string) *fixture {
	t.Helper()
	r := remotetest.NewRoom(t, version, remote, other)
	createContent := fmt.Sprintf(`{"room_version":%q}`, version)
	if version == "10" {
		createContent = fmt.Sprintf(`{"creator":%q,"room_version":"10"}`, alice)
	}
	f := r.Create(alice, createContent)
	create := r.ByID[f.Prev[0]]
	store := remotetest.NewStore(r)
	fx := &fixture{t: t, room: r, base: f, store: store, ev: map[string]*pdu.Event{"create": create}}
	fx.p = inbound.New(store, remotetest.NewKeyring(remote, other), store)
	remotetest.Feed(t, fx.p, inbound.Accepted, create)
	fx.ev["alice"] = fx.send(f.SendState(alice, "m.room.member", alice, `{"membership":"join"}`))
	fx.ev["pl"] = fx.send(f.SendState(alice, "m.room.power_levels", "", fx.powerLevels(map[string]int{mod: 50})))
	fx.ev["jr"] = fx.send(f.SendState(alice, "m.room.join_rules", "", `{"join_rule":"public"}`))
	fx.ev["mod"] = fx.send(f.SendState(mod, "m.room.member", mod, `{"membership":"join"}`))
	fx.ev["bob"] = fx.send(f.SendState(bob, "m.room.member", bob, `{"membership":"join"}`))
	return fx
}

// powerLevels is power levels content giving users their levels and alice
// 100 (in version 12 she is a creator, whom power levels must not list).
func (fx *fixture) powerLevels(users map[string]int) string {
	all := map[string]int{}
	if fx.room.Version != "12" {
		all[alice] = 100
	}
	for u, l := range users {
		all[u] = l
	}
	content, _ := json.Marshal(map[string]any{"users": all})
	return string(content)
}

// send accepts ev, which must be accepted, and returns it.
func (fx *fixture) send(ev *pdu.Event) *pdu.Event {
	fx.t.Helper()
	remotetest.Feed(fx.t, fx.p, inbound.Accepted, ev)
	return ev
}

// accept runs ev through Accept and returns the verdict.
func (fx *fixture) accept(ev *pdu.Event) *inbound.Verdict {
	fx.t.Helper()
	v, _, err := fx.p.Accept(context.Background(), ev.Raw)
	if err != nil {
		fx.t.Fatalf("Accept(%s by %s) = %v", ev.Type, ev.Sender, err)
	}
	return v
}

func key(typ, stateKey string) authrules.StateKey {
	return authrules.StateKey{Type: typ, StateKey: stateKey}
}

// forEachVersion runs fn as a subtest per room version.
func forEachVersion(t *testing.T, fn func(t *testing.T, version string)) {
	for _, v := range versions {
		t.Run("v"+v, func(t *testing.T) { fn(t, v) })
	}
}

func remotetestKeys() remotetest.Keyring { return remotetest.NewKeyring(remote, other) }
