package rooms

import (
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// renderFor builds an event as the writer stores it and renders it for
// its own sender's device, so the transaction ID is included.
func renderFor(typ, stateKey, txn string, content []byte) []byte {
	ev := &pdu.Event{ID: "$e", RoomID: "!r:x", Sender: "@a:x", Type: typ, StateKey: &stateKey, Content: content, OriginServerTS: 1}
	se := &storage.Event{Client: clientJSON(ev), Unsigned: []byte(`{}`), OriginTS: 1, Sender: "@a:x", Type: typ,
		TxnID: txn, TxnDevice: "D", Membership: "join"}
	return AppendClientEvent(nil, se, 5, Viewer{UserID: "@a:x", DeviceID: "D"})
}

// TestClientEventIsJSON: every transaction ID, type and state key comes out
// as JSON that parses back to the same text (invalid UTF-8 as U+FFFD). Go
// string quoting, used before, wrote "\a" and "\xff", which are not JSON.
func TestClientEventIsJSON(t *testing.T) {
	for _, txn := range []string{"plain", "bell\a", "\xff", "nul\x00", "quote\"back\\slash", "tab\tnl\n", "\u2028\u2029", "del\x7f", "é🙂", "\x1b[31m", "<&>"} {
		out := renderFor("m.room.member", txn, txn, []byte(`{"membership":"join"}`))
		var got struct {
			StateKey string `json:"state_key"`
			Unsigned struct {
				TxnID string `json:"transaction_id"`
			} `json:"unsigned"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Errorf("txnId %q: client event %s does not parse: %v", txn, out, err)
			continue
		}
		want, _ := json.Marshal(txn) // encoding/json's reading of the same text
		var wantStr string
		_ = json.Unmarshal(want, &wantStr)
		if got.Unsigned.TxnID != wantStr || got.StateKey != wantStr {
			t.Errorf("txnId %q: transaction_id = %q, state_key = %q, want %q", txn, got.Unsigned.TxnID, got.StateKey, wantStr)
		}
	}
}

// FuzzClientEvent: any transaction ID, type, state key and any content that
// parses as a JSON object give a client event that parses as JSON.
func FuzzClientEvent(f *testing.F) {
	f.Add("txn1", "m.room.message", "", []byte(`{"body":"hi"}`))
	f.Add("\a\xff", "m.room.member", "@a:x", []byte(`{"membership":"join","displayname":"\u0007"}`))
	f.Add("\u2028", "t\x00", "\"", []byte(`{"a":[1,{"b":null}]}`))
	f.Fuzz(func(t *testing.T, txn, typ, stateKey string, content []byte) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(content, &obj) != nil || obj == nil {
			return // the writer only stores JSON objects
		}
		out := renderFor(typ, stateKey, txn, content)
		if !json.Valid(out) {
			t.Fatalf("client event for txnId %q type %q state key %q content %s is not JSON: %s", txn, typ, stateKey, content, out)
		}
	})
}

// BenchmarkAppendClientEvent: rendering one event for a reader, the
// per-event cost of every /sync and /messages.
func BenchmarkAppendClientEvent(b *testing.B) {
	key := ""
	ev := &pdu.Event{ID: "$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", RoomID: "!room:example.org", Sender: "@alice:example.org",
		Type: "m.room.message", StateKey: &key, Content: []byte(`{"body":"hello world","msgtype":"m.text"}`), OriginServerTS: 1}
	ev.StateKey = nil
	se := &storage.Event{Client: clientJSON(ev), Unsigned: []byte(`{}`), OriginTS: 1, Sender: ev.Sender, Type: ev.Type,
		TxnID: "m1733350000000.42", TxnDevice: "DEVICE"}
	v := Viewer{UserID: ev.Sender, DeviceID: "DEVICE"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendClientEvent(buf[:0], se, 5, v)
	}
}
