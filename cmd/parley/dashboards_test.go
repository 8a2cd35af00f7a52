package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/parley-im/parley/homeserver/hstest"
)

// externalSeries are the series the alert rules read that Parley does not
// serve: Prometheus's own up, and node_exporter's file system sizes.
var externalSeries = []string{"up", "node_filesystem_avail_bytes", "node_filesystem_size_bytes"}

// seriesRE finds the metric names in a PromQL expression: every name the
// files use starts with one of these prefixes, or is an external series.
var seriesRE = regexp.MustCompile(`\b(?:parley|go|process|node)_[a-zA-Z0-9_]+|\bup\b`)

// TestDashboardMetricsExist parses docs/grafana/parley.json and
// docs/grafana/alerts.yml and checks that every metric they use is served
// by a started server's /_parley/admin/v1/metrics (parsed with
// Prometheus's text parser): a renamed metric breaks this test, not the
// operators' dashboards. _bucket, _sum and _count need a histogram or
// summary of that name.
func TestDashboardMetricsExist(t *testing.T) {
	var exprs []string
	raw, err := os.ReadFile("../../docs/grafana/parley.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("parley.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	raw, err = os.ReadFile("../../docs/grafana/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string
				Expr  string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("alert rule %+v lacks a name or an expression", r)
			}
			exprs = append(exprs, r.Expr)
			alerts++
		}
	}
	if len(exprs) < 20 || alerts < 5 {
		t.Fatalf("found %d expressions and %d alerts, want the whole dashboard and rule set", len(exprs), alerts)
	}

	srv := hstest.Start(t, hstest.Options{})
	if _, err := srv.Srv.CreateUser(context.Background(), "boss", "pw-boss", true); err != nil {
		t.Fatal(err)
	}
	boss := srv.Login(t, "boss")
	room := boss.CreateRoom(map[string]any{})
	boss.Send(room, "t1", "traffic")
	boss.Sync("", 0)
	req, _ := http.NewRequest("GET", srv.URL+"/_parley/admin/v1/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+boss.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}

	checked := map[string]bool{}
	for _, e := range exprs {
		for _, name := range seriesRE.FindAllString(e, -1) {
			if checked[name] || slices.Contains(externalSeries, name) {
				continue
			}
			checked[name] = true
			if f := fams[name]; f != nil {
				continue
			}
			found := false
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base, ok := strings.CutSuffix(name, suffix)
				f := fams[base]
				if ok && f != nil && (f.GetType() == dto.MetricType_HISTOGRAM || suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY) {
					found = true
				}
			}
			if !found {
				t.Errorf("metric %s (in %q) is not in the scrape", name, e)
			}
		}
	}
	if len(checked) < 20 {
		t.Errorf("checked %d metric names, want the dashboard's and the alerts' (>= 20)", len(checked))
	}
}
