package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(o options) bool
		wantErr string // "" = accepted
	}{
		{"scenario first", []string{"send", "--senders", "3", "--rooms", "2", "--json"},
			func(o options) bool { return o.Scenario == "send" && o.Senders == 3 && o.Rooms == 2 && o.JSON }, ""},
		{"scenario last", []string{"--duration", "2s", "fanout"},
			func(o options) bool {
				return o.Scenario == "fanout" && o.Duration == 2*time.Second && o.Members == 100 && o.Senders == 1
			}, ""},
		{"send defaults", []string{"send"},
			func(o options) bool {
				return o.Senders == 16 && o.Rooms == 8 && o.Target == "http://127.0.0.1:8008" && o.Duration == 10*time.Second
			}, ""},
		{"latency defaults", []string{"latency"},
			func(o options) bool { return o.Users == 50 && o.Senders == 4 && o.Rooms == 10 && o.Rate == 100 }, ""},
		{"idle users default to conns", []string{"idle", "--conns", "300"},
			func(o options) bool { return o.Conns == 300 && o.Users == 300 && o.Steps == 4 }, ""},
		{"idle with pid", []string{"idle", "--pid", "42", "--users", "10"},
			func(o options) bool { return o.PID == 42 && o.Users == 10 && o.Conns == 1000 }, ""},
		{"initial-sync defaults", []string{"initial-sync"},
			func(o options) bool { return o.Rooms == 20 && o.History == 100 }, ""},
		{"random prefix", []string{"send"},
			func(o options) bool { return strings.HasPrefix(o.UserPrefix, "pb") && len(o.UserPrefix) == 8 }, ""},
		{"given prefix", []string{"send", "--user-prefix", "run7"},
			func(o options) bool { return o.UserPrefix == "run7" }, ""},
		{"remote allowed", []string{"send", "--target", "https://matrix.example.org", "--allow-remote"},
			func(o options) bool { return o.AllowRemote && o.Target == "https://matrix.example.org" }, ""},
		{"presence default", []string{"fanout"}, func(o options) bool { return o.SetPresence == "offline" }, ""},
		{"presence online", []string{"fanout", "--set-presence", "online"}, func(o options) bool { return o.SetPresence == "online" }, ""},
		{"bad presence", []string{"fanout", "--set-presence", "away"}, nil, "--set-presence"},
		{"no scenario", []string{"--json"}, nil, "no scenario"},
		{"unknown scenario", []string{"flood"}, nil, "unknown scenario"},
		{"two scenarios", []string{"send", "idle"}, nil, "unexpected argument"},
		{"bad prefix", []string{"send", "--user-prefix", "Bad Name"}, nil, "--user-prefix"},
		{"zero duration", []string{"send", "--duration", "0s"}, nil, "--duration"},
		{"negative rate", []string{"latency", "--rate", "-1"}, nil, "--rate"},
		{"negative senders", []string{"send", "--senders", "-2"}, nil, "--senders"},
		{"negative warmup", []string{"fanout", "--warmup", "-1"}, nil, "--warmup"},
		{"pid outside idle", []string{"send", "--pid", "1"}, nil, "--pid"},
		{"more users than polls", []string{"idle", "--conns", "10", "--users", "20"}, nil, "--users"},
		{"unknown flag", []string{"send", "--nope"}, nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseFlags(%q) = %v, want no error", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.wantErr)
			case tt.check != nil && !tt.check(o):
				t.Errorf("parseFlags(%q) = %+v, not what the case expects", tt.args, o)
			}
		})
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	var out strings.Builder
	_, err := parseFlags([]string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "scenarios: send, latency") {
		t.Errorf("parseFlags(-h) = %v with %q, want flag.ErrHelp and the usage", err, out.String())
	}
}
