package inbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// FuzzParseTransaction: any body is parsed or refused with a Matrix
// error, within the unit limits, and never panics.
func FuzzParseTransaction(f *testing.F) {
	for _, s := range []string{
		`{"origin":"a.example","origin_server_ts":1,"pdus":[{"type":"m.room.message"}],"edus":[{"edu_type":"m.typing","content":{}}]}`,
		`{"pdus":[]}`, `{}`, `[]`, `{"pdus":{}}`, `{"edus":[1,{"edu_type":2},{"edu_type":"x"}]}`, ``, `{"pdus":[1e999]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		txn, err := inbound.ParseTransaction(body, 50, 100)
		if err != nil {
			var e *apierr.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("ParseTransaction error = %v, want a 400 apierr.Error", err)
			}
			return
		}
		if len(txn.PDUs) > 50 || len(txn.EDUs) > 100 {
			t.Fatalf("ParseTransaction kept %d PDUs and %d EDUs, over the limits", len(txn.PDUs), len(txn.EDUs))
		}
		for _, e := range txn.EDUs {
			if e.Type == "" {
				t.Fatalf("ParseTransaction kept an EDU without a type")
			}
		}
	})
}

// FuzzProcess: any PDU and EDU bytes, from a server in the room, go
// through the whole handler (pipeline, fetches from a peer, ACL, EDU
// validation) without a panic, and a result names only a valid event ID.
func FuzzProcess(f *testing.F) {
	p := newPeer(f)
	e := newEnv(f, func(c *inbound.Config) { c.Fetcher = p.fetcher() })
	tr := e.newRoom()
	next := tr.fork.Clone()
	msg := next.BuildMessage(bob, "seed")
	later := next.Clone()
	later.Apply(msg)
	p.serve(tr.room)
	f.Add(msg.Raw, "m.typing", []byte(`{"room_id":"`+tr.room.ID+`","user_id":"`+bob+`","typing":true}`))
	f.Add(later.BuildMessage(bob, "gap").Raw, "m.receipt", []byte(`{"`+tr.room.ID+`":{"m.read":{"`+bob+`":{"event_ids":["$x"]}}}}`))
	f.Add([]byte(`{"room_id":"`+tr.room.ID+`","type":"m.room.message"}`), "m.direct_to_device", []byte(`{"sender":"`+bob+`","type":"t","messages":{"@lou:parley.test":{"D":{}}}}`))
	f.Add([]byte(`[]`), "m.presence", []byte(`{"push":[{"user_id":"`+bob+`","presence":"online"}]}`))
	f.Fuzz(func(t *testing.T, pduBytes []byte, eduType string, eduContent []byte) {
		txn := &inbound.Transaction{
			PDUs: []json.RawMessage{pduBytes},
			EDUs: []inbound.EDU{{Type: eduType, Content: eduContent}},
		}
		for id := range e.h.Process(context.Background(), remote.Name, txn) {
			if !pdu.ValidEventID(id) {
				t.Fatalf("result for %q, not an event ID", id)
			}
		}
	})
}
