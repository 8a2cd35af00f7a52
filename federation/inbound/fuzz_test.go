package inbound_test

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/federation/inbound"
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
