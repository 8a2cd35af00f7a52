package inbound_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// TestSendTxnLogAcrossRestart: with the store's transaction log, a
// transaction retried after a restart (a new handler, empty memory) gets
// its first answer, and its EDUs are not delivered again. On SQLite and
// PostgreSQL.
func TestSendTxnLogAcrossRestart(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := storage.Open(ctx, st.URL, filepath.Join(t.TempDir(), "p.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			withLog := func(c *inbound.Config) { c.TxnLog = db }

			e := newEnv(t, withLog)
			tr := e.newRoom()
			m := tr.fork.SendMessage(bob, "before the restart")
			toDevice := edu(t, "m.direct_to_device", map[string]any{"sender": bob, "type": "m.x", "message_id": "once",
				"messages": map[string]any{local: map[string]any{"DEV": map[string]any{}}}})
			status1, body1 := e.send(remote.Name, "r1", []json.RawMessage{m.Raw}, []inbound.EDU{toDevice})

			// "Restart": a new handler over the same rooms and log.
			restarted := newEnv(t, withLog)
			restarted.rooms = e.rooms
			status2, body2 := restarted.send(remote.Name, "r1", []json.RawMessage{m.Raw}, []inbound.EDU{toDevice})
			if status1 != 200 || status2 != 200 || string(body1) != string(body2) {
				t.Errorf("send, then retry after restart = %d %s, %d %s; want 200 and the same answer", status1, body1, status2, body2)
			}
			if n := len(restarted.sinks.toDevice); n != 0 {
				t.Errorf("to-device delivered again after the restart: %d times", n)
			}
			if got, err := db.FederationTxn(ctx, remote.Name, "r1"); err != nil || string(got) != string(body1) {
				t.Errorf("log holds %s, %v; want %s", got, err, body1)
			}
		})
	}
}

// The store is the handler's TxnLog and RoomServers as it is.
var (
	_ inbound.TxnLog      = (*storage.Store)(nil)
	_ inbound.RoomServers = (*storage.Store)(nil)
)
