package rooms

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/storage"
)

// TestReceiptHook: the hook sees each receipt stored, once, after its
// commit, and not one ignored as older than the user's current one.
func TestReceiptHook(t *testing.T) {
	var got []storage.Receipt
	s := newTestService(t, Config{ReceiptHook: func(r storage.Receipt) { got = append(got, r) }})
	ctx := context.Background()
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: "@a:test.local"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 2 {
		id, err := s.Send(ctx, SendRequest{RoomID: room, Sender: "@a:test.local", Type: "m.room.message",
			Content: json.RawMessage(`{"msgtype":"m.text","body":"x"}`), TxnID: string(rune('a' + i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range []string{ids[1], ids[0]} { // the second is older: ignored
		if err := s.PutReceipt(ctx, room, "@a:test.local", "m.read", id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0].EventID != ids[1] || got[0].RoomID != room || got[0].Type != "m.read" || got[0].Pos == 0 {
		t.Errorf("hook saw %+v, want one m.read receipt for %s", got, ids[1])
	}
}
