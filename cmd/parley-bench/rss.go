package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// rssPoint is the server's resident memory while it held some long-polls.
type rssPoint struct {
	Polls    int   `json:"polls"`
	RSSBytes int64 `json:"rss_bytes"`
}

// readRSS reads VmRSS of a process from /proc/<pid>/status.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read server RSS: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the "VmRSS:   123456 kB" line of a status file.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want a number of kB", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %w", sc.Text(), err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	return 0, errors.New("no VmRSS line (a kernel thread, or not Linux?)")
}

// slope fits rss = a + slope*polls by least squares and returns the slope
// (bytes per held poll) and the intercept. A single sample cannot give a
// slope, nor can samples that all hold the same number of polls.
func slope(points []rssPoint) (perPoll, intercept float64, err error) {
	n := float64(len(points))
	if len(points) < 2 {
		return 0, 0, errors.New("need at least two samples for a slope")
	}
	var sx, sy float64
	for _, p := range points {
		sx += float64(p.Polls)
		sy += float64(p.RSSBytes)
	}
	mx, my := sx/n, sy/n
	var sxx, sxy float64
	for _, p := range points {
		dx := float64(p.Polls) - mx
		sxx += dx * dx
		sxy += dx * (float64(p.RSSBytes) - my)
	}
	if sxx == 0 {
		return 0, 0, errors.New("every sample holds the same number of polls")
	}
	perPoll = sxy / sxx
	return perPoll, my - perPoll*mx, nil
}
