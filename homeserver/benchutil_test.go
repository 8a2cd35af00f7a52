package homeserver_test

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The abuse benchmarks' shared measuring tools: latency percentiles of the
// well-behaved user's requests and the process's resident set.

// latency is a summary of request latencies, in milliseconds.
type latency struct{ p50, p99, mean float64 }

// summarize sorts lat and summarises it; lat must not be empty.
func summarize(lat []time.Duration) latency {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latency{p50: ms(lat[len(lat)/2]), p99: ms(lat[(len(lat)*99+99)/100-1]), mean: ms(sum) / float64(len(lat))}
}

// readRSS is this process's resident set in bytes (Linux), 0 elsewhere.
func readRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(data) {
		if rest, found := bytes.CutPrefix(line, []byte("VmRSS:")); found {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
