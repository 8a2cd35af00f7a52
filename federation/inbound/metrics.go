package inbound

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the handler's figures, read at scrape time. Each is
// written with atomic adds by whichever goroutine counts it.
type counters struct {
	txnOK, txnRetried, txnRefusedRate, txnRefusedBusy, txnRefusedBad atomic.Int64
	pduTaken, pduRejected, pduDenied, pduFailed                      atomic.Int64
	eduTaken, eduDropped                                             atomic.Int64
}

func (c *counters) countPDU(r PDUResult) {
	switch {
	case r.Error == "":
		c.pduTaken.Add(1)
	case len(r.Error) >= len("rejected:") && r.Error[:len("rejected:")] == "rejected:":
		c.pduRejected.Add(1)
	default:
		c.pduFailed.Add(1)
	}
}

// Collector returns a Prometheus collector of the handler's figures:
// transactions by outcome, PDUs by result and EDUs taken or dropped.
// Register it in a registry of your own.
func (h *Handler) Collector() prometheus.Collector {
	return &collector{h: h,
		txns: prometheus.NewDesc("parley_federation_inbound_transactions_total",
			"Inbound federation transactions by outcome: ok, retried (answered from the transaction cache or log), refused_rate, refused_concurrent, refused_bad (body or ID).", []string{"outcome"}, nil),
		pdus: prometheus.NewDesc("parley_federation_inbound_pdus_total",
			"Inbound PDUs by result: taken (accepted, soft-failed or already held), rejected, denied (server ACL), failed (dropped, missing events, internal).", []string{"result"}, nil),
		edus: prometheus.NewDesc("parley_federation_inbound_edus_total",
			"Inbound EDUs of known types handed to a sink (taken) or dropped as invalid or not allowed.", []string{"result"}, nil),
	}
}

type collector struct {
	h                *Handler
	txns, pdus, edus *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.txns
	ch <- c.pdus
	ch <- c.edus
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := &c.h.count
	emit := func(d *prometheus.Desc, v *atomic.Int64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()), label)
	}
	emit(c.txns, &m.txnOK, "ok")
	emit(c.txns, &m.txnRetried, "retried")
	emit(c.txns, &m.txnRefusedRate, "refused_rate")
	emit(c.txns, &m.txnRefusedBusy, "refused_concurrent")
	emit(c.txns, &m.txnRefusedBad, "refused_bad")
	emit(c.pdus, &m.pduTaken, "taken")
	emit(c.pdus, &m.pduRejected, "rejected")
	emit(c.pdus, &m.pduDenied, "denied")
	emit(c.pdus, &m.pduFailed, "failed")
	emit(c.edus, &m.eduTaken, "taken")
	emit(c.edus, &m.eduDropped, "dropped")
}
