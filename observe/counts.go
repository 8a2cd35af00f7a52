package observe

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/storage"
)

// Counter counts the store's rows; *storage.Store implements it.
type Counter interface {
	Counts(ctx context.Context) (storage.Counts, error)
}

// DefaultCountsEvery is how stale the row counts may be.
const DefaultCountsEvery = 5 * time.Minute

// Counts is a collector of users, devices, rooms and events. Counting a
// big table is a full scan, so a scrape never waits for one (but the
// first): it shows the last counts and, when they are older than every,
// starts one refresh in the background.
type Counts struct {
	store Counter
	every time.Duration
	log   *slog.Logger

	mu         sync.Mutex
	last       storage.Counts // guarded by mu
	at         time.Time      // when last was taken; guarded by mu
	refreshing bool           // a refresh runs; guarded by mu

	users, devices, rooms, events, age *prometheus.Desc
}

// NewCounts builds the collector; every <= 0 means DefaultCountsEvery.
func NewCounts(store Counter, every time.Duration, log *slog.Logger) *Counts {
	if every <= 0 {
		every = DefaultCountsEvery
	}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &Counts{store: store, every: every, log: log,
		users:   d("parley_users", "Local accounts, deactivated ones included (refreshed every few minutes)."),
		devices: d("parley_devices", "Devices (logged-in sessions) of local users (refreshed every few minutes)."),
		rooms:   d("parley_rooms", "Rooms the server knows (refreshed every few minutes)."),
		events:  d("parley_events", "Events stored (refreshed every few minutes)."),
		age:     d("parley_counts_age_seconds", "Age of parley_users, parley_devices, parley_rooms and parley_events."),
	}
}

// Describe implements prometheus.Collector.
func (c *Counts) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.users, c.devices, c.rooms, c.events, c.age} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Counts) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	first := c.at.IsZero() && !c.refreshing
	stale := !c.at.IsZero() && time.Since(c.at) > c.every && !c.refreshing
	if first || stale {
		c.refreshing = true
	}
	c.mu.Unlock()
	if first {
		c.refresh()
	} else if stale {
		go c.refresh()
	}
	c.mu.Lock()
	last, at := c.last, c.at
	c.mu.Unlock()
	if at.IsZero() {
		return // the first count failed: show nothing rather than zeros
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.users, float64(last.Users))
	g(c.devices, float64(last.Devices))
	g(c.rooms, float64(last.Rooms))
	g(c.events, float64(last.Events))
	g(c.age, time.Since(at).Seconds())
}

func (c *Counts) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := c.store.Counts(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = false
	if err != nil {
		c.log.Warn("metrics: counting rows failed", "err", err)
		return
	}
	c.last, c.at = got, time.Now()
}
