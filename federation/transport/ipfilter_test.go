package transport

import (
	"net"
	"net/netip"
	"testing"
)

func TestIPFilter(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/32")}
	open, guarded := NewIPFilter(allow), NewIPFilter(nil)
	for _, tc := range []struct {
		ip                    string
		wantGuarded, wantOpen bool
	}{
		{"8.8.8.8", true, true},
		{"2606:4700:4700::1111", true, true},
		{"127.0.0.1", false, true},
		{"127.0.0.3", false, true},
		{"::ffff:127.0.0.1", false, true}, // IPv4-mapped loopback
		{"::1", false, false},
		{"10.0.0.1", false, false},
		{"10.1.2.3", false, true},
		{"172.16.5.4", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false}, // cloud metadata
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"fd00::1", false, false},
		{"fe80::1", false, false},
		{"224.0.0.1", false, false},
	} {
		ip := net.ParseIP(tc.ip)
		if got := guarded.Allowed(ip); got != tc.wantGuarded {
			t.Errorf("default Allowed(%s) = %v, want %v", tc.ip, got, tc.wantGuarded)
		}
		if got := open.Allowed(ip); got != tc.wantOpen {
			t.Errorf("allowlist Allowed(%s) = %v, want %v", tc.ip, got, tc.wantOpen)
		}
	}
	if guarded.Allowed(nil) {
		t.Errorf("Allowed(nil) = true, want false")
	}
}
