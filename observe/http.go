package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultSlowRequest is the slow-request threshold when the configuration
// gives none.
const DefaultSlowRequest = 2 * time.Second

// HTTPConfig configures an HTTP observer.
type HTTPConfig struct {
	Logger *slog.Logger
	// SlowRequest: a request that takes longer is logged at warn level,
	// /sync long-polls excepted (they are slow on purpose). Zero means
	// DefaultSlowRequest; negative turns the log off.
	SlowRequest time.Duration
	// MaxSyncTimeout is the server's cap on a /sync long-poll, to tell a
	// long-poll woken by news from one that ran out. Zero means 60 s.
	MaxSyncTimeout time.Duration
}

// HTTP observes requests. Static after NewHTTP; the metrics are safe for
// concurrent use and seq is atomic.
type HTTP struct {
	cfg    HTTPConfig
	prefix string        // random per process, so IDs from two runs differ
	seq    atomic.Uint64 // request IDs are prefix-seq
	// routeCtxs pools chi route contexts, as chi's own router does.
	routeCtxs sync.Pool

	requests     *prometheus.CounterVec   // route, method, status
	duration     *prometheus.HistogramVec // route, method
	inFlight     prometheus.Gauge
	syncHeld     prometheus.Gauge
	syncWakeups  prometheus.Counter
	syncDuration *prometheus.HistogramVec // kind: longpoll or immediate
}

// NewHTTP builds an observer.
func NewHTTP(cfg HTTPConfig) *HTTP {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SlowRequest == 0 {
		cfg.SlowRequest = DefaultSlowRequest
	}
	if cfg.MaxSyncTimeout <= 0 {
		cfg.MaxSyncTimeout = 60 * time.Second
	}
	var p [4]byte
	_, _ = rand.Read(p[:])
	lat := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	return &HTTP{cfg: cfg, prefix: hex.EncodeToString(p[:]),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern and method.", Buckets: lat}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_http_requests_in_flight", Help: "HTTP requests being served."}),
		syncHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_sync_longpolls_held",
			Help: "/sync long-polls (since and timeout given) being held now."}),
		syncWakeups: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_sync_wakeups_total",
			Help: "/sync long-polls answered before their timeout ran out: news woke them."}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_sync_duration_seconds",
			Help: "/sync response time: kind longpoll (since and timeout given) or immediate (initial syncs and timeout 0).", Buckets: lat}, []string{"kind"}),
	}
}

// Collectors are the observer's metrics, to register.
func (h *HTTP) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.requests, h.duration, h.inFlight, h.syncHeld, h.syncWakeups, h.syncDuration}
}

type ctxKey struct{}

// RequestID returns the ID of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Wrap observes every request next serves. next must be (or wrap) a chi
// router: Wrap puts a chi route context in the request so that the route
// pattern chi matched is known afterwards (chi then uses it instead of
// one of its own; Wrap pools them as chi does). Each request gets an ID,
// in the X-Request-Id answer header and on every log line made with the
// request's context (ContextHandler).
func (h *HTTP) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [32]byte
		id := string(strconv.AppendUint(append(append(buf[:0], h.prefix...), '-'), h.seq.Add(1), 10))
		w.Header().Set("X-Request-Id", id)
		rctx, _ := h.routeCtxs.Get().(*chi.Context)
		if rctx == nil {
			rctx = chi.NewRouteContext()
		}
		rctx.Reset()
		st := &observed{ResponseWriter: w, status: http.StatusOK, start: time.Now(), rctx: rctx, method: r.Method}
		st.ctx = context.WithValue(context.WithValue(r.Context(), ctxKey{}, id), chi.RouteCtxKey, rctx)
		r = r.WithContext(st.ctx)
		st.isSync = r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/sync") && strings.HasPrefix(r.URL.Path, "/_matrix/client/")
		if st.isSync {
			if ms, ok, since := longPollParams(r.URL.RawQuery); ok && ms > 0 && since != "" {
				st.longPoll, st.timeout = true, min(time.Duration(ms)*time.Millisecond, h.cfg.MaxSyncTimeout)
				h.syncHeld.Inc()
			}
		}
		h.inFlight.Inc()
		defer h.finish(st)
		next.ServeHTTP(st, r)
	})
}

// finish records a served request, and logs it when slow.
func (h *HTTP) finish(st *observed) {
	h.inFlight.Dec()
	d := time.Since(st.start)
	route := st.rctx.RoutePattern()
	if route == "" {
		route = "unmatched"
	}
	h.requests.WithLabelValues(route, st.method, statusLabel(st.status)).Inc()
	h.duration.WithLabelValues(route, st.method).Observe(d.Seconds())
	if st.isSync {
		kind := "immediate"
		if st.longPoll {
			kind = "longpoll"
			h.syncHeld.Dec()
			if d+100*time.Millisecond < st.timeout {
				h.syncWakeups.Inc()
			}
		}
		h.syncDuration.WithLabelValues(kind).Observe(d.Seconds())
	}
	if h.cfg.SlowRequest > 0 && d > h.cfg.SlowRequest && !st.longPoll {
		h.cfg.Logger.WarnContext(st.ctx, "slow request", "method", st.method, "route", route, "status", st.status, "duration_ms", d.Milliseconds())
	}
	h.routeCtxs.Put(st.rctx)
}

// observed is one request in flight: its response writer, which
// remembers the status written, and what finish needs. One allocation
// per request. Unwrap lets http.ResponseController reach the
// connection's own methods.
type observed struct {
	http.ResponseWriter
	status  int
	written bool

	start    time.Time
	ctx      context.Context
	rctx     *chi.Context
	method   string
	isSync   bool
	longPoll bool
	timeout  time.Duration
}

func (w *observed) WriteHeader(code int) {
	if !w.written {
		w.status, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *observed) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

func (w *observed) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.written = true
		f.Flush()
	}
}

func (w *observed) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ContextHandler adds the request ID to every record logged with a
// request's context.
type ContextHandler struct{ slog.Handler }

// Handle adds request_id when ctx carries one.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (h ContextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(as)}
}

// WithGroup keeps the wrapper around the derived handler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}

// statusLabels holds the label of every valid status code, so that a
// request's status costs no allocation.
var statusLabels = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
