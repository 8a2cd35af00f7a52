package inbound_test

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/federation/inbound"
)

// TestCollector: the handler's figures count transactions by outcome,
// PDUs by result and EDUs taken or dropped.
func TestCollector(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config) { c.Limit.OriginRate, c.Limit.OriginBurst = 0.001, 2 })
	tr := e.newRoom()
	good := tr.fork.SendMessage(bob, "taken")
	rejected := tr.fork.Clone().BuildMessage(carol, "not a member")
	typing := edu(t, "m.typing", map[string]any{"room_id": tr.room.ID, "user_id": bob, "typing": true})
	badTyping := edu(t, "m.typing", map[string]any{"room_id": tr.room.ID, "user_id": carol, "typing": true})
	e.send(remote.Name, "c1", []json.RawMessage{good.Raw, rejected.Raw}, []inbound.EDU{typing, badTyping, edu(t, "x.unknown", map[string]any{})})
	e.send(remote.Name, "c1", nil, nil)              // retried
	e.sendRaw(remote.Name, "c2", []byte(`not json`)) // refused_bad
	e.send(remote.Name, "c3", nil, nil)              // refused_rate: the bucket held 2
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.h.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"parley_federation_inbound_transactions_total/ok":                 1,
		"parley_federation_inbound_transactions_total/retried":            1,
		"parley_federation_inbound_transactions_total/refused_bad":        1,
		"parley_federation_inbound_transactions_total/refused_rate":       1,
		"parley_federation_inbound_transactions_total/refused_concurrent": 0,
		"parley_federation_inbound_pdus_total/taken":                      1,
		"parley_federation_inbound_pdus_total/rejected":                   1,
		"parley_federation_inbound_pdus_total/denied":                     0,
		"parley_federation_inbound_pdus_total/failed":                     0,
		"parley_federation_inbound_edus_total/taken":                      1,
		"parley_federation_inbound_edus_total/dropped":                    1,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}
