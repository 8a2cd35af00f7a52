package transport

import (
	"net"
	"net/netip"
)

// deniedRanges are refused for outbound federation by default: loopback,
// private, link-local, shared (CGNAT), multicast and documentation ranges.
// It is Synapse's default ip_range_blacklist; a peer that resolves to one
// of these is either misconfigured or trying to reach our internal network
// through us (SSRF).
var deniedRanges = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"255.255.255.255/32",
	"::/128", "::1/128", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fc00::/7",
	"fe80::/10", "fec0::/10", "ff00::/8",
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IPFilter decides which addresses outbound federation may dial. Static
// after construction.
type IPFilter struct {
	allow []netip.Prefix
}

// NewIPFilter returns a filter that refuses the denied ranges except those
// addresses inside allow (config.Federation.AllowPrefixes parses the
// configured list).
func NewIPFilter(allow []netip.Prefix) *IPFilter { return &IPFilter{allow: allow} }

// Allowed reports whether ip may be dialled.
func (f *IPFilter) Allowed(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range f.allow {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range deniedRanges {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
