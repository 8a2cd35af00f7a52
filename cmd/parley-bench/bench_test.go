package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestScenariosAgainstParley runs every scenario for a second with tiny
// sizes against a real Parley started in this process, through the same
// cli entry point as the binary, and checks that the JSON report is sane.
func TestScenariosAgainstParley(t *testing.T) {
	// Open registration, no rate limits; channel-fanout posts many times
	// a minute to one channel.
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.Channels.PostsPerMinute = 1 << 30 }})
	base := []string{"--target", srv.URL, "--json", "--duration", "1s", "--drain", "5s"}
	tests := []struct {
		args  []string
		check func(t *testing.T, r *report)
	}{
		{[]string{"send", "--senders", "3", "--rooms", "2"}, func(t *testing.T, r *report) {
			positive(t, r, "acked_sends")
			if s := r.Latency["send_ack"]; s.Count != r.Counts["acked_sends"] || s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
				t.Errorf("send_ack latency = %+v, want %d ordered samples", s, r.Counts["acked_sends"])
			}
			if r.Rates["acked_sends"] <= 0 {
				t.Errorf("acked_sends rate = %v, want positive", r.Rates["acked_sends"])
			}
		}},
		{[]string{"latency", "--users", "4", "--senders", "2", "--rooms", "2", "--rate", "40"}, func(t *testing.T, r *report) {
			positive(t, r, "acked_sends", "deliveries")
			// Two pollers per room: every acknowledged message reaches both.
			if got, want := r.Counts["deliveries"], 2*r.Counts["acked_sends"]; got != want || r.Counts["missing_deliveries"] != 0 || r.Counts["limited_timelines"] != 0 {
				t.Errorf("deliveries = %d (missing %d), want %d", got, r.Counts["missing_deliveries"], want)
			}
			if s := r.Latency["delivery"]; s.Count != r.Counts["deliveries"] || s.Max <= 0 {
				t.Errorf("delivery latency = %+v, want %d samples", s, r.Counts["deliveries"])
			}
		}},
		{[]string{"fanout", "--members", "4"}, func(t *testing.T, r *report) {
			positive(t, r, "complete_messages")
			if r.Counts["deliveries"] < 4*r.Counts["complete_messages"] || r.Counts["incomplete_messages"] != 0 || r.Counts["limited_timelines"] != 0 {
				t.Errorf("counts = %v, want 4 deliveries per complete message and none incomplete", r.Counts)
			}
			if s := r.Latency["time_to_last_delivery"]; s.Count != r.Counts["complete_messages"] || s.P50 <= 0 {
				t.Errorf("time_to_last_delivery = %+v, want %d samples", s, r.Counts["complete_messages"])
			}
		}},
		{[]string{"channel-fanout", "--members", "4", "--senders", "2"}, func(t *testing.T, r *report) {
			positive(t, r, "complete_messages")
			if r.Counts["deliveries"] < 4*r.Counts["complete_messages"] || r.Counts["incomplete_messages"] != 0 {
				t.Errorf("counts = %v, want 4 deliveries per complete post and none incomplete", r.Counts)
			}
			if s := r.Latency["time_to_last_delivery"]; s.Count != r.Counts["complete_messages"] || s.P50 <= 0 {
				t.Errorf("time_to_last_delivery = %+v, want %d samples", s, r.Counts["complete_messages"])
			}
		}},
		{[]string{"idle", "--conns", "6", "--users", "3", "--steps", "2", "--pid", strconv.Itoa(os.Getpid())}, func(t *testing.T, r *report) {
			if r.Counts["polls_held"] != 6 || len(r.RSS) != 2 || r.RSS[1].Polls != 6 || r.RSS[0].RSSBytes <= 0 {
				t.Errorf("idle: counts %v, rss points %v; want 6 polls held and 2 points", r.Counts, r.RSS)
			}
			if _, ok := r.Values["bytes_per_held_poll"]; !ok {
				t.Errorf("idle: values %v, want bytes_per_held_poll", r.Values)
			}
		}},
		{[]string{"initial-sync", "--rooms", "3", "--history", "4"}, func(t *testing.T, r *report) {
			positive(t, r, "syncs", "response_bytes", "timeline_events")
			if r.Counts["joined_rooms"] != 3 {
				t.Errorf("joined_rooms = %d, want 3", r.Counts["joined_rooms"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := cli(context.Background(), append(tt.args, base...), &stdout, &stderr)
			if code != exitOK {
				t.Fatalf("cli(%q) = %d, stderr:\n%s", tt.args, code, stderr.String())
			}
			var r report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
			}
			if r.Scenario != tt.args[0] || r.Seconds <= 0 || r.Seconds > 1.5 {
				t.Errorf("report scenario %q, %v s measured; want %q within about 1 s", r.Scenario, r.Seconds, tt.args[0])
			}
			if r.Counts["errors"] != 0 {
				t.Errorf("errors = %v: %v", r.Errors, r.ErrorSamples)
			}
			tt.check(t, &r)
			if stderr.Len() != 0 { // no terminal, no --progress: no bar
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}

func positive(t *testing.T, r *report, names ...string) {
	t.Helper()
	for _, n := range names {
		if r.Counts[n] <= 0 {
			t.Errorf("%s = %d, want positive (counts %v)", n, r.Counts[n], r.Counts)
		}
	}
}

func TestTableAndProgressOutput(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	var stdout, stderr bytes.Buffer
	code := cli(context.Background(), []string{"send", "--target", srv.URL, "--senders", "2", "--rooms", "1",
		"--duration", "300ms", "--progress"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("cli = %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"parley-bench send", "acked_sends", "send_ack", "p99.9"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{"register s", "create rooms", "send "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("progress lacks %q:\n%q", want, stderr.String())
		}
	}
}

func TestRefusals(t *testing.T) {
	closed := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.Registration.Mode = config.RegistrationClosed }})
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"send", "--target", "http://10.9.8.7:8008"}, exitUsage, "not loopback"},
		{[]string{"send", "--target", closed.URL, "--senders", "1", "--rooms", "1"}, exitError, "M_FORBIDDEN"},
		{[]string{"idle", "--target", closed.URL, "--pid", "999999999"}, exitError, "server RSS"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := cli(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || stdout.Len() != 0 {
			t.Errorf("cli(%q) = %d, stderr %q, stdout %q; want %d, an error with %q and no report",
				tt.args, code, stderr.String(), stdout.String(), tt.wantCode, tt.wantErr)
		}
	}
}

// TestInterruptStopsWithAPartialReport cancels a long run as ctrl-C does,
// once the progress bar shows the measured phase: the report still comes,
// marked interrupted, and the exit code says so.
func TestInterruptStopsWithAPartialReport(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	done := make(chan int)
	go func() {
		done <- cli(ctx, []string{"latency", "--target", srv.URL, "--users", "2", "--rooms", "1", "--senders", "1",
			"--rate", "50", "--duration", "1h", "--json", "--progress"}, &stdout, stderr)
	}()
	measuring := regexp.MustCompile(`latency .* [1-9][0-9]* acked`)
	hstest.Eventually(t, "the measured phase", func() bool { return measuring.MatchString(stderr.String()) })
	cancel()
	select {
	case code := <-done:
		var r report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || code != exitError || !r.Interrupted || r.Counts["acked_sends"] == 0 {
			t.Errorf("interrupted run: code %d, report %+v (%v), stderr %q; want exit 1 and an interrupted report with sends",
				code, r, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10 s of the interrupt")
	}
}

// lockedBuffer is a bytes.Buffer the progress bar may write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
