package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is one run's outcome. Its JSON form is what --json prints; the
// maps keep one shape for every scenario, so a script reads
// .rates_per_second.acked_sends or .latency_ms.delivery.p99_ms alike.
type report struct {
	Scenario     string             `json:"scenario"`
	Target       string             `json:"target"`
	Params       map[string]any     `json:"params"`
	SetupSeconds float64            `json:"setup_seconds"`
	Seconds      float64            `json:"seconds"` // the measured window
	Interrupted  bool               `json:"interrupted,omitempty"`
	Counts       map[string]int64   `json:"counts"`
	Rates        map[string]float64 `json:"rates_per_second,omitempty"`
	Latency      map[string]summary `json:"latency_ms,omitempty"`
	Values       map[string]float64 `json:"values,omitempty"`
	RSS          []rssPoint         `json:"rss_points,omitempty"`
	Errors       map[string]int64   `json:"errors,omitempty"` // by kind
	ErrorSamples []string           `json:"error_samples,omitempty"`
	Notes        []string           `json:"notes,omitempty"`
}

func newReport(opt options, params map[string]any) *report {
	if opt.Scenario != "send" { // the only scenario without syncs
		params["set_presence"] = opt.SetPresence
	}
	return &report{
		Scenario: opt.Scenario,
		Target:   opt.Target,
		Params:   params,
		Counts:   map[string]int64{},
		Rates:    map[string]float64{},
		Latency:  map[string]summary{},
		Values:   map[string]float64{},
	}
}

// rate adds name per second of the measured window, rounded for reading.
func (r *report) rate(name string, n int64) {
	if r.Seconds > 0 {
		r.Rates[name] = round(float64(n)/r.Seconds, 1)
	}
}

func (r *report) finish(setup, measured time.Duration, errs *errorLog) {
	r.SetupSeconds = round(setup.Seconds(), 3)
	r.Seconds = round(measured.Seconds(), 3)
	r.Errors, r.ErrorSamples = errs.snapshot()
	r.Counts["errors"] = errs.total()
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// writeTable prints the report for people: sections in a fixed order, keys
// sorted within each.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "parley-bench %s  %s\n", r.Scenario, r.Target)
	var params []string
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		params = append(params, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(w, "  %s\n", strings.Join(params, " "))
	state := ""
	if r.Interrupted {
		state = "  (interrupted)"
	}
	fmt.Fprintf(w, "  setup %.1fs, measured %.2fs%s\n\n", r.SetupSeconds, r.Seconds, state)

	for _, k := range slices.Sorted(maps.Keys(r.Counts)) {
		line := fmt.Sprintf("  %s\t%d\t", k, r.Counts[k])
		if v, ok := r.Rates[k]; ok {
			line = fmt.Sprintf("  %s\t%d\t%.1f/s\t", k, r.Counts[k], v)
		}
		fmt.Fprintln(tw, line)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Rates)) {
		if _, ok := r.Counts[k]; !ok {
			fmt.Fprintf(tw, "  %s\t\t%.1f/s\t\n", k, r.Rates[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Values)) {
		fmt.Fprintf(tw, "  %s\t%s\t\n", k, formatValue(r.Values[k]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Latency) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "  latency (ms)\tcount\tmin\tp50\tp90\tp99\tp99.9\tmax\t")
		for _, k := range slices.Sorted(maps.Keys(r.Latency)) {
			s := r.Latency[k]
			fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", k, s.Count, s.Min, s.P50, s.P90, s.P99, s.P999, s.Max)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.RSS) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "  held polls\tserver RSS (MiB)\t")
		for _, p := range r.RSS {
			fmt.Fprintf(tw, "  %d\t%.1f\t\n", p.Polls, float64(p.RSSBytes)/(1<<20))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\n  errors by kind:")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "    %s: %d\n", k, r.Errors[k])
		}
		for _, s := range r.ErrorSamples {
			fmt.Fprintf(w, "    e.g. %s\n", s)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\n  note: %s\n", n)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// formatValue prints whole numbers without decimals and the rest with two.
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
