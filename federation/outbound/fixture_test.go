package outbound_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// fixture is a Parley server, its outbound queue and a test transport. A
// remote user's member event goes in through the room writer's entry point
// for other servers' events (injectMember), as inbound federation stores
// it.
type fixture struct {
	t       testing.TB
	st      hstest.Store
	dir     string
	srv     *hstest.Server
	tr      *transport
	q       *outbound.Queue
	mutate  func(*outbound.Config)
	clients []*hstest.Client
}

func newFixture(t testing.TB, st hstest.Store, mutate func(*outbound.Config)) *fixture {
	f := &fixture{t: t, st: st, dir: t.TempDir(), tr: newTransport(), mutate: mutate}
	f.srv = hstest.Start(t, hstest.Options{Store: st, DataDir: f.dir})
	return f
}

// startQueue starts the queue on the current server.
func (f *fixture) startQueue() *outbound.Queue {
	f.q = startQueue(f.t, f.srv, f.tr, f.mutate)
	return f.q
}

func (f *fixture) register(name string) *hstest.Client {
	c := f.srv.Register(f.t, name)
	f.clients = append(f.clients, c)
	return c
}

// room creates a public room of version 11 (its auth events name the
// create event, which injectMember relies on).
func (f *fixture) room(c *hstest.Client) string {
	return c.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11"})
}

// restart stops the queue and the server, runs between (with the server
// down), and starts both again on the same data.
func (f *fixture) restart(between func()) {
	f.t.Helper()
	hadQueue := f.q != nil
	if hadQueue {
		stopQueue(f.t, f.q)
		f.q = nil
	}
	f.srv.Stop()
	if between != nil {
		between()
	}
	f.srv = hstest.Start(f.t, hstest.Options{Store: f.st, DataDir: f.dir})
	for _, c := range f.clients {
		c.Base = f.srv.URL
	}
	if hadQueue {
		f.startQueue()
	}
}

// injectMember appends member events sent by remote users (each signed
// with a key of its server) to the room's log, as inbound federation would.
func (f *fixture) injectMember(roomID, membership string, userIDs ...string) {
	f.t.Helper()
	f.inject(roomID, membership, false, userIDs...)
}

// injectOnBehalf is injectMember for events this server accepted as the
// resident server (send_join): marked to send on their origin's behalf.
func (f *fixture) injectOnBehalf(roomID, membership string, userIDs ...string) {
	f.t.Helper()
	f.inject(roomID, membership, true, userIDs...)
}

func (f *fixture) inject(roomID, membership string, onBehalf bool, userIDs ...string) {
	f.t.Helper()
	for _, userID := range userIDs {
		f.appendMember(context.Background(), roomID, userID, membership, onBehalf)
	}
}

// appendMember builds userID's member event, signed with a key of its
// server, on top of the room's extremities, and stores it as an accepted
// inbound event through the room writer (rooms.Service.PersistInbound), as
// inbound federation does.
func (f *fixture) appendMember(ctx context.Context, roomID, userID, membership string, onBehalf bool) {
	f.t.Helper()
	svc := f.srv.Srv.Rooms
	room, err := f.srv.Srv.Store.GetRoom(ctx, roomID)
	if err != nil {
		f.t.Fatalf("load room: %v", err)
	}
	xs, err := svc.Extremities(ctx, roomID)
	if err != nil {
		f.t.Fatal(err)
	}
	current, err := f.srv.Srv.Store.CurrentState(ctx, roomID)
	if err != nil {
		f.t.Fatal(err)
	}
	before := map[authrules.StateKey]string{}
	for _, se := range current {
		before[authrules.StateKey{Type: se.Type, StateKey: se.StateKeyOr()}] = se.EventID
	}
	content, _ := json.Marshal(map[string]string{"membership": membership})
	var auth []string
	for _, k := range authrules.Needed("m.room.member", &userID, userID, content) {
		if id := before[k]; id != "" {
			auth = append(auth, id)
		}
	}
	var prev, seen []string
	var depth int64
	for _, x := range xs {
		prev, seen = append(prev, x.EventID), append(seen, x.EventID)
		depth = max(depth, x.Depth)
	}
	server := pdu.Domain(userID)
	key, err := pdu.LoadOrCreateKey(filepath.Join(f.dir, "remote-"+server+".key"), server)
	if err != nil {
		f.t.Fatalf("remote key: %v", err)
	}
	ev, err := pdu.Build(pdu.Proto{RoomID: roomID, Sender: userID, Type: "m.room.member", StateKey: &userID, Content: content,
		PrevEvents: prev, AuthEvents: auth, Depth: depth + 1, OriginServerTS: time.Now().UnixMilli()}, room.Version, key)
	if err != nil {
		f.t.Fatalf("build member event: %v", err)
	}
	in := rooms.InboundEvent{Event: ev, Kind: rooms.Accepted, StateBefore: before, ExtremitiesSeen: seen}
	if onBehalf {
		in.OnBehalfOf = server
	}
	if _, err := svc.PersistInbound(ctx, in); err != nil {
		f.t.Fatalf("persist member event: %v", err)
	}
}
