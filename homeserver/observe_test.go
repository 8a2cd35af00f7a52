package homeserver_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parley-im/parley/homeserver/hstest"
)

// scrape fetches the metrics as c and parses them with Prometheus's own
// text parser.
func scrape(t *testing.T, srv *hstest.Server, c *hstest.Client) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+adminAPI+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape = %d %s, want 200", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	return fams
}

// metricValue sums the samples of family name whose labels include want
// (counter, gauge, or a histogram's sample count).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsScrape: the metrics parse with Prometheus's text parser and
// cover requests by route pattern, the writer, sync long-polls, the
// store's counts and pools, the room cache and the Go runtime; the key
// series move when messages are sent and a long-poll is woken. A
// non-admin gets 403.
func TestMetricsScrape(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			if st, res := alice.Do("GET", adminAPI+"/metrics", nil); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("non-admin scrape = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			room := alice.CreateRoom(map[string]any{})
			before := scrape(t, srv, boss)
			for _, name := range []string{"parley_http_requests_total", "parley_http_request_duration_seconds", "parley_http_requests_in_flight",
				"parley_writer_batch_jobs", "parley_writer_batch_seconds", "parley_writer_commit_seconds", "parley_writer_job_seconds",
				"parley_writer_queue_length", "parley_writer_cache_rooms", "parley_writer_cache_bytes",
				"parley_sync_longpolls_held", "parley_sync_wakeups_total", "parley_users", "parley_devices", "parley_rooms", "parley_events",
				"go_sql_open_connections", "go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
				if fams := before[name]; fams == nil {
					t.Errorf("scrape lacks %s", name)
				}
			}
			if got := metricValue(before, "parley_users", nil); got != 2 {
				t.Errorf("parley_users = %v, want 2", got)
			}
			sendRoute := map[string]string{"route": "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}", "method": "PUT", "status": "200"}
			for i := range 3 {
				alice.Send(room, fmt.Sprint("m", i), "hello")
			}
			since := alice.Sync("", 0).Get("next_batch").String()
			done := make(chan struct{})
			go func() {
				defer close(done)
				alice.Sync(since, 20000)
			}()
			hstest.Eventually(t, "a held long-poll", func() bool {
				return metricValue(scrape(t, srv, boss), "parley_sync_longpolls_held", nil) == 1
			})
			alice.Send(room, "wake", "wake up")
			<-done
			after := scrape(t, srv, boss)
			for _, c := range []struct {
				name   string
				labels map[string]string
				min    float64
			}{
				{"parley_http_requests_total", sendRoute, 4},
				{"parley_http_request_duration_seconds", map[string]string{"route": sendRoute["route"]}, 4},
				{"parley_writer_batch_jobs", nil, 4},
				{"parley_writer_job_seconds", nil, 4},
				{"parley_sync_wakeups_total", nil, 1},
				{"parley_sync_duration_seconds", map[string]string{"kind": "longpoll"}, 1},
				{"parley_sync_duration_seconds", map[string]string{"kind": "immediate"}, 1},
			} {
				if got, was := metricValue(after, c.name, c.labels), max(metricValue(before, c.name, c.labels), 0); got-was < c.min {
					t.Errorf("%s%v moved from %v to %v, want it up by %v or more", c.name, c.labels, was, got, c.min)
				}
			}
			if got := metricValue(after, "parley_sync_longpolls_held", nil); got != 0 {
				t.Errorf("parley_sync_longpolls_held after the wake-up = %v, want 0", got)
			}
			for _, f := range after["parley_http_requests_total"].GetMetric() {
				for _, l := range f.GetLabel() {
					if l.GetName() == "route" && strings.Contains(l.GetValue(), "!") {
						t.Errorf("route label %q holds a raw path, want the pattern", l.GetValue())
					}
				}
			}
		})
	}
}

// TestHealthProbes: /healthz and /readyz answer without a token, with
// JSON, and every readiness check passes on a running server; every
// answer carries a request ID.
func TestHealthProbes(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			anon := srv.Anon(t)
			if st, res := anon.Do("GET", "/healthz", nil); st != 200 || res.Get("status").String() != "ok" {
				t.Errorf("healthz = %d %s, want 200 ok", st, res.Raw)
			}
			st, res := anon.Do("GET", "/readyz", nil)
			if st != 200 || res.Get("status").String() != "ok" {
				t.Errorf("readyz = %d %s, want 200 ok", st, res.Raw)
			}
			for _, check := range []string{"store", "migrations", "writer"} {
				if got := res.Get("checks." + check).String(); got != "ok" {
					t.Errorf("readyz check %s = %q, want ok", check, got)
				}
			}
			resp, err := http.Get(srv.URL + "/_matrix/client/versions")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("versions answer has no X-Request-Id header")
			}
		})
	}
}

// TestMetricsFederating: with federation on, the scrape also carries
// inbound federation's series and still parses.
func TestMetricsFederating(t *testing.T) {
	srv := hstest.StartFederating(t, hstest.FedOptions{})
	if _, err := srv.Srv.CreateUser(t.Context(), "boss", "pw-boss", true); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, srv, srv.Login(t, "boss"))
	for _, name := range []string{"parley_federation_inbound_transactions_total", "parley_http_requests_total"} {
		if fams[name] == nil {
			t.Errorf("federating scrape lacks %s", name)
		}
	}
}
