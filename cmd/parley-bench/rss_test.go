package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestSlope(t *testing.T) {
	tests := []struct {
		name          string
		points        []rssPoint
		wantSlope     float64
		wantIntercept float64
		wantErr       bool
	}{
		{"exact line", []rssPoint{{100, 1_100_000}, {200, 1_200_000}, {300, 1_300_000}, {400, 1_400_000}}, 1000, 1_000_000, false},
		{"two points", []rssPoint{{0, 50}, {10, 150}}, 10, 50, false},
		{"noisy", []rssPoint{{1, 12}, {2, 19}, {3, 31}, {4, 38}}, 9, 2.5, false},
		{"flat", []rssPoint{{1, 5}, {2, 5}, {3, 5}}, 0, 5, false},
		{"shrinking", []rssPoint{{1, 30}, {2, 20}, {3, 10}}, -10, 40, false},
		{"one point", []rssPoint{{100, 1}}, 0, 0, true},
		{"none", nil, 0, 0, true},
		{"same polls", []rssPoint{{5, 1}, {5, 9}}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, i, err := slope(tt.points)
			if (err != nil) != tt.wantErr {
				t.Fatalf("slope(%v) error = %v, want error %v", tt.points, err, tt.wantErr)
			}
			if math.Abs(s-tt.wantSlope) > 1e-9 || math.Abs(i-tt.wantIntercept) > 1e-6 {
				t.Errorf("slope(%v) = %v, %v, want %v, %v", tt.points, s, i, tt.wantSlope, tt.wantIntercept)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		status  string
		want    int64
		wantErr bool
	}{
		{"Name:\tparley\nVmPeak:\t  999 kB\nVmRSS:\t   56340 kB\nVmData:\t 1 kB\n", 56340 * 1024, false},
		{"VmRSS: 1 kB", 1024, false},
		{"Name:\tkthreadd\n", 0, true},
		{"VmRSS:\t12 MB\n", 0, true},
		{"VmRSS:\tlots kB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseVmRSS(strings.NewReader(tt.status))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseVmRSS(%q) = %d, %v; want %d, error %v", tt.status, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	rss, err := readRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("readRSS(self) = %d, %v; want at least 1 MiB", rss, err)
	}
}
