package push

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// stats are the delivery counters, since start.
type stats struct {
	sent      atomic.Int64 // notifications a gateway took
	failed    atomic.Int64 // attempts that will be retried
	abandoned atomic.Int64 // notifications a gateway refused for good (4xx)
	rejected  atomic.Int64 // pushers removed because their pushkey was rejected
	dropped   atomic.Int64 // notifications dropped because a queue was full
}

// Collector returns a Prometheus collector of the delivery figures, read
// at scrape time; register it in a registry of your own.
func (s *Service) Collector() prometheus.Collector { return &collector{s: s} }

var (
	descSent      = prometheus.NewDesc("parley_push_sent_total", "Notifications a push gateway accepted.", nil, nil)
	descFailed    = prometheus.NewDesc("parley_push_failed_attempts_total", "Push attempts that failed and will be retried (network, 5xx, 429).", nil, nil)
	descAbandoned = prometheus.NewDesc("parley_push_abandoned_total", "Notifications a push gateway refused with a 4xx; not retried.", nil, nil)
	descRejected  = prometheus.NewDesc("parley_push_pushers_rejected_total", "Pushers removed because the gateway rejected their pushkey.", nil, nil)
	descDropped   = prometheus.NewDesc("parley_push_dropped_total", "Notifications dropped because their pusher's queue was full (push.max_queue).", nil, nil)
	descQueued    = prometheus.NewDesc("parley_push_queued", "Notifications waiting for delivery, all pushers.", nil, nil)
)

type collector struct{ s *Service }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSent, descFailed, descAbandoned, descRejected, descDropped, descQueued} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := &c.s.stats
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{{descSent, st.sent.Load()}, {descFailed, st.failed.Load()}, {descAbandoned, st.abandoned.Load()},
		{descRejected, st.rejected.Load()}, {descDropped, st.dropped.Load()}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(c.s.Status().Queued))
}

// Stats is a copy of the delivery counters since start.
type Stats struct {
	Sent, Failed, Abandoned, Rejected, Dropped int64
}

// Stats reads the delivery counters.
func (s *Service) Stats() Stats {
	st := &s.stats
	return Stats{Sent: st.sent.Load(), Failed: st.failed.Load(), Abandoned: st.abandoned.Load(),
		Rejected: st.rejected.Load(), Dropped: st.dropped.Load()}
}
