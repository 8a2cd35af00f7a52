package homeserver

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/observe"
	"github.com/parley-im/parley/storage"
)

// observability is the server's metrics registry and HTTP observer
// (package observe). Static after newObservability.
type observability struct {
	http *observe.HTTP
	reg  *prometheus.Registry
}

// newObservability builds the registry that GET /_parley/admin/v1/metrics
// serves: requests, sync long-polls, row counts, database pools and the
// Go runtime. The client API adds the writer's and the desks' collectors
// to it.
func newObservability(cfg config.Config, store *storage.Store, log *slog.Logger) *observability {
	slow := time.Duration(cfg.Log.SlowRequestMs) * time.Millisecond
	if cfg.Log.SlowRequestMs < 0 {
		slow = -1
	}
	o := &observability{
		http: observe.NewHTTP(observe.HTTPConfig{Logger: log, SlowRequest: slow,
			MaxSyncTimeout: time.Duration(cfg.Sync.MaxTimeoutMs) * time.Millisecond}),
		reg: prometheus.NewRegistry(),
	}
	o.reg.MustRegister(o.http.Collectors()...)
	o.reg.MustRegister(observe.NewCounts(store, 0, log))
	o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	read, write := store.Pools()
	if write == nil {
		o.reg.MustRegister(collectors.NewDBStatsCollector(read, "main"))
	} else {
		o.reg.MustRegister(collectors.NewDBStatsCollector(read, "read"), collectors.NewDBStatsCollector(write, "write"))
	}
	return o
}
