package main

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"1234 (parley) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0", 3 * time.Second, false},
		{"1 (a b) c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, false},
		{"1 (x) S 1 2 3", 0, true},
		{"no name at all", 0, true},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 3 0 0", 0, true},
	}
	for _, tt := range tests {
		got, err := parseStatCPU(tt.stat)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v, error %v", tt.stat, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (parley) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0")
	f.Add("1 (a b) c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0")
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseStatCPU(s); err == nil && d < 0 {
			t.Errorf("parseStatCPU(%q) = %v, a negative time", s, d)
		}
	})
}
