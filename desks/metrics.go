package desks

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/storage"
)

// sampleSize bounds the recent first-reply times kept per desk for p50
// and p90: enough for stable percentiles, and a fixed 8 KB per desk.
const sampleSize = 1000

// stats are a desk's running figures. All-time totals are loaded from the
// store at start, so they survive restarts; percentiles come from the
// newest sampleSize first replies. Guarded by desk.mu.
type stats struct {
	opened, reroutes int64
	replied          int64
	replySum         time.Duration
	ratings          [6]int64 // by value; [0] unused
	sample           []time.Duration
	next             int // where the ring overwrites next, once full
}

func (st *stats) load(t storage.DeskTotals, recentMs []int64) {
	st.opened, st.reroutes, st.replied = t.Opened, t.Reroutes, t.Replied
	st.replySum = time.Duration(t.ReplyMsSum) * time.Millisecond
	st.ratings = t.Ratings
	for i := len(recentMs) - 1; i >= 0; i-- { // oldest first, as if observed live
		st.observe(time.Duration(recentMs[i]) * time.Millisecond)
	}
}

func (st *stats) reply(d time.Duration) {
	st.replied++
	st.replySum += d
	st.observe(d)
}

func (st *stats) observe(d time.Duration) {
	if len(st.sample) < sampleSize {
		st.sample = append(st.sample, d)
		return
	}
	st.sample[st.next] = d
	st.next = (st.next + 1) % sampleSize
}

func (st *stats) rate(r int) {
	if r >= 1 && r <= 5 {
		st.ratings[r]++
	}
}

// quantile returns the q-quantile (nearest rank) of sorted, in seconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)].Seconds()
}

// MetricsView is a desk's figures, as the admin API and Prometheus give them.
type MetricsView struct {
	Opened       int64       `json:"consultations_opened"`
	QueueLength  int         `json:"queue_length"`
	Assigned     int         `json:"assigned"`
	Reroutes     int64       `json:"reroutes"`
	LongestWaitS float64     `json:"longest_wait_s"`
	FirstReply   ReplyFigure `json:"first_reply_seconds"`
	Ratings      RatingStats `json:"ratings"`
}

// ReplyFigure is time to first agent reply: from opening to the first
// message of an assigned agent. Count and SumS are all-time; P50 and P90
// are over the newest Sample answered consultations.
type ReplyFigure struct {
	Count  int64   `json:"count"`
	SumS   float64 `json:"sum"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	Sample int     `json:"sample"`
}

// RatingStats are the customers' ratings, all-time.
type RatingStats struct {
	Count   int64            `json:"count"`
	Average float64          `json:"average"`
	ByValue map[string]int64 `json:"by_value"`
}

func (d *desk) metricsLocked(now time.Time) MetricsView {
	st := &d.stats
	m := MetricsView{Opened: st.opened, QueueLength: len(d.queue), Reroutes: st.reroutes,
		Ratings: RatingStats{ByValue: map[string]int64{}}}
	for _, c := range d.open {
		if c.state == Assigned {
			m.Assigned++
		}
	}
	for _, c := range d.queue {
		m.LongestWaitS = max(m.LongestWaitS, now.Sub(c.queuedAt).Seconds())
	}
	sorted := slices.Clone(st.sample)
	slices.Sort(sorted)
	m.FirstReply = ReplyFigure{Count: st.replied, SumS: st.replySum.Seconds(), P50: quantile(sorted, 0.5), P90: quantile(sorted, 0.9), Sample: len(sorted)}
	var sum int64
	for r := 1; r <= 5; r++ {
		m.Ratings.ByValue[strconv.Itoa(r)] = st.ratings[r]
		m.Ratings.Count += st.ratings[r]
		sum += int64(r) * st.ratings[r]
	}
	if m.Ratings.Count > 0 {
		m.Ratings.Average = float64(sum) / float64(m.Ratings.Count)
	}
	return m
}

// Collector returns a Prometheus collector of every desk's figures. It
// reads the same numbers as the admin API, at scrape time, so the two
// never disagree; register it in a registry of your own.
func (s *Service) Collector() prometheus.Collector { return newCollector(s) }

type collector struct {
	s                                       *Service
	opened, reroutes, queue, assigned, wait *prometheus.Desc
	firstReply, ratings, agents             *prometheus.Desc
}

func newCollector(s *Service) *collector {
	desk := []string{"desk"}
	return &collector{
		s:          s,
		opened:     prometheus.NewDesc("parley_desk_consultations_opened_total", "Consultations opened on the desk.", desk, nil),
		reroutes:   prometheus.NewDesc("parley_desk_reroutes_total", "Consultations re-routed because their agent went offline, away, was removed or did not answer in time.", desk, nil),
		queue:      prometheus.NewDesc("parley_desk_queue_length", "Consultations waiting in the desk's queue.", desk, nil),
		assigned:   prometheus.NewDesc("parley_desk_assigned_consultations", "Open consultations assigned to an agent.", desk, nil),
		wait:       prometheus.NewDesc("parley_desk_longest_wait_seconds", "How long the longest-waiting queued customer has waited.", desk, nil),
		firstReply: prometheus.NewDesc("parley_desk_first_reply_seconds", "Time from opening a consultation to the first agent reply (quantiles over the newest 1000).", desk, nil),
		ratings:    prometheus.NewDesc("parley_desk_ratings_total", "Customer ratings, by value.", []string{"desk", "rating"}, nil),
		agents:     prometheus.NewDesc("parley_desk_agents", "Agents of the desk, by status.", []string{"desk", "status"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.opened, c.reroutes, c.queue, c.assigned, c.wait, c.firstReply, c.ratings, c.agents} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := c.s.cfg.Now()
	for _, d := range c.s.allDesks() {
		d.mu.Lock()
		m := d.metricsLocked(now)
		statuses := map[Status]int{StatusAvailable: 0, StatusBusy: 0, StatusAway: 0}
		for i := range d.cands {
			statuses[d.cands[i].Status]++
		}
		d.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.opened, prometheus.CounterValue, float64(m.Opened), d.id)
		ch <- prometheus.MustNewConstMetric(c.reroutes, prometheus.CounterValue, float64(m.Reroutes), d.id)
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(m.QueueLength), d.id)
		ch <- prometheus.MustNewConstMetric(c.assigned, prometheus.GaugeValue, float64(m.Assigned), d.id)
		ch <- prometheus.MustNewConstMetric(c.wait, prometheus.GaugeValue, m.LongestWaitS, d.id)
		var q map[float64]float64
		if m.FirstReply.Sample > 0 {
			q = map[float64]float64{0.5: m.FirstReply.P50, 0.9: m.FirstReply.P90}
		}
		ch <- prometheus.MustNewConstSummary(c.firstReply, uint64(m.FirstReply.Count), m.FirstReply.SumS, q, d.id)
		for r := 1; r <= 5; r++ {
			v := strconv.Itoa(r)
			ch <- prometheus.MustNewConstMetric(c.ratings, prometheus.CounterValue, float64(m.Ratings.ByValue[v]), d.id, v)
		}
		for st, n := range statuses {
			ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(n), d.id, string(st))
		}
	}
}
