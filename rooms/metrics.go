package rooms

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector of the writer's figures: its
// queue and refusals, and its room cache's size and evictions. It reads them
// at scrape time; register it in a registry of your own.
func (s *Service) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &collector{s: s,
		queue:      d("parley_writer_queue_length", "Writes waiting for the room writer."),
		refused:    prometheus.NewDesc("parley_writer_refused_total", "Writes refused because one user's backlog (busy) or the whole queue (overloaded) was full.", []string{"reason"}, nil),
		rooms:      d("parley_writer_cache_rooms", "Rooms in the writer's cache of current state."),
		bytes:      d("parley_writer_cache_bytes", "Estimated memory held by the writer's room cache."),
		maxBytes:   d("parley_writer_cache_max_bytes", "The bound on parley_writer_cache_bytes (writer.cache_bytes)."),
		evictions:  d("parley_writer_cache_evictions_total", "Rooms dropped from the writer's cache to stay under its bound."),
		cacheLoads: d("parley_writer_cache_loads_total", "Rooms loaded into the writer's cache from the database, or created."),
	}
}

type collector struct {
	s                                                             *Service
	queue, refused, rooms, bytes, maxBytes, evictions, cacheLoads *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queue, c.refused, c.rooms, c.bytes, c.maxBytes, c.evictions, c.cacheLoads} {
		ch <- d
	}
	for _, h := range c.s.stats.collectors() {
		h.Describe(ch)
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.CacheStats()
	busy, overloaded := c.s.queue.refusals()
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(c.s.QueueDepth()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(busy), "busy")
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(overloaded), "overloaded")
	ch <- prometheus.MustNewConstMetric(c.rooms, prometheus.GaugeValue, float64(st.Rooms))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.cacheLoads, prometheus.CounterValue, float64(st.Loads))
	for _, h := range c.s.stats.collectors() {
		h.Collect(ch)
	}
}
