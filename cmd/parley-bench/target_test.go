package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	hosts := map[string][]string{
		"localhost":      {"127.0.0.1", "::1"},
		"other-loopback": {"127.3.2.1"},
		"mixed":          {"127.0.0.1", "10.0.0.5"},
		"example.org":    {"93.184.216.34"},
		"mapped":         {"::ffff:127.0.0.1"},
		"empty":          {},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		addrs, ok := hosts[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	tests := []struct {
		target      string
		allowRemote bool
		wantErr     string // "" = accepted
	}{
		{"http://127.0.0.1:8008", false, ""},
		{"http://127.45.6.7:8008/", false, ""},
		{"http://[::1]:8008", false, ""},
		{"https://localhost", false, ""},
		{"http://other-loopback:1", false, ""},
		{"http://mapped:1", false, ""},
		{"http://10.1.2.3:8008", false, "not loopback"},
		{"http://[2001:db8::1]:8008", false, "not loopback"},
		{"http://128.0.0.1", false, "not loopback"},
		{"http://example.org", false, "not loopback"},
		{"http://mixed:8008", false, "not loopback"},
		{"http://empty:8008", false, "no address"},
		{"http://nowhere:8008", false, "resolve"},
		{"http://example.org", true, ""},
		{"http://10.1.2.3:8008", true, ""},
		{"ftp://127.0.0.1", false, "http://"},
		{"127.0.0.1:8008", false, "--target"},
		{"http://", false, "no host"},
		{"http://127.0.0.1:8008/_matrix", false, "without a path"},
	}
	for _, tt := range tests {
		err := checkTarget(context.Background(), tt.target, tt.allowRemote, lookup)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkTarget(%q, allowRemote=%v) = %v, want nil", tt.target, tt.allowRemote, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("checkTarget(%q, allowRemote=%v) = %v, want an error with %q", tt.target, tt.allowRemote, err, tt.wantErr)
		}
	}
}
