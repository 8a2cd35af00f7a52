package push

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/parley-im/parley/federation/transport"
)

// errDenied refuses a dial to a denied address.
var errDenied = errors.New("push: gateway address refused (private or reserved; see push.allow_ips)")

// guardedClient is the HTTP client of push delivery. A pusher's URL is
// chosen by a user, so every connection is checked after name resolution,
// on the address actually dialled, against the same denied ranges as
// outbound federation (transport.IPFilter): a name that resolves to a
// loopback or private address is refused however it was reached. Redirects
// are not followed (a gateway could point us anywhere), and no proxy from
// the environment is used.
func guardedClient(allow []netip.Prefix, timeout time.Duration) *http.Client {
	filter := transport.NewIPFilter(allow)
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", errDenied, address)
		}
		if ip := net.ParseIP(host); ip == nil || !filter.Allowed(ip) {
			return fmt.Errorf("%w: %s", errDenied, host)
		}
		return nil
	}}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
