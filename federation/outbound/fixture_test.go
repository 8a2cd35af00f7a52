package outbound_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// fixture is a Parley server, its outbound queue and a test transport. The
// room writer refuses events of other servers' users, and inbound
// federation (another part of issue 11) is not built yet, so a remote
// user's member event is written into the store while the server is
// stopped (injectMember); the server and a new queue then start again on
// the same data, which also exercises the queue's restart.
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
	f.restart(func() {
		ctx := context.Background()
		cfg := f.srv.Cfg
		store, err := storage.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath())
		if err != nil {
			f.t.Fatalf("open store: %v", err)
		}
		defer store.Close()
		for _, userID := range userIDs {
			f.appendMember(ctx, store, roomID, userID, membership, onBehalf)
		}
	})
}

func (f *fixture) appendMember(ctx context.Context, store *storage.Store, roomID, userID, membership string, onBehalf bool) {
	head, err := store.LoadRoomHead(ctx, roomID)
	if err != nil {
		f.t.Fatalf("load room: %v", err)
	}
	var auth []string
	for _, se := range head.State {
		switch {
		case se.Type == "m.room.create", se.Type == "m.room.power_levels", se.Type == "m.room.join_rules",
			se.Type == "m.room.member" && *se.StateKey == userID:
			auth = append(auth, se.EventID)
		}
	}
	server := pdu.Domain(userID)
	key, err := pdu.LoadOrCreateKey(filepath.Join(f.dir, "remote-"+server+".key"), server)
	if err != nil {
		f.t.Fatalf("remote key: %v", err)
	}
	content, _ := json.Marshal(map[string]string{"membership": membership})
	ev, err := pdu.Build(pdu.Proto{RoomID: roomID, Sender: userID, Type: "m.room.member", StateKey: &userID, Content: content,
		PrevEvents: []string{head.Extremities[0].EventID}, AuthEvents: auth, Depth: head.Extremities[0].Depth + 1, OriginServerTS: time.Now().UnixMilli()},
		head.Version, key)
	if err != nil {
		f.t.Fatalf("build member event: %v", err)
	}
	pos, err := store.MaxPosition(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	client, _ := json.Marshal(map[string]any{"event_id": ev.ID, "room_id": roomID, "sender": userID, "type": "m.room.member",
		"state_key": userID, "content": json.RawMessage(content), "origin_server_ts": ev.OriginServerTS})
	tx, err := store.BeginWrite(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := tx.InsertEvent(ctx, &storage.Event{Pos: pos + 1, EventID: ev.ID, RoomID: roomID, Type: "m.room.member", StateKey: &userID,
		Sender: userID, Depth: ev.Depth, OriginTS: ev.OriginServerTS, Membership: membership, Client: client}, ev.Raw); err != nil {
		tx.Rollback()
		f.t.Fatalf("insert member event: %v", err)
	}
	if onBehalf {
		if err := tx.MarkSendOnBehalf(ctx, pos+1, server); err != nil {
			tx.Rollback()
			f.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		f.t.Fatalf("commit member event: %v", err)
	}
}
