package transport

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"go.mau.fi/util/exhttp"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix/federation"
)

// ClientConfig configures the outbound client.
type ClientConfig struct {
	ServerName string // our name, the X-Matrix origin
	Key        *federation.SigningKey
	// AllowIPs opens denied ranges (see IPFilter). Zero value means none:
	// loopback and private addresses are refused.
	AllowIPs []netip.Prefix
	// InsecureSkipVerify skips TLS certificate checks. Unsafe: for
	// loopback tests against self-signed certificates only.
	InsecureSkipVerify bool
	// Resolver answers the SRV lookups of server discovery. Zero value
	// means net.DefaultResolver; tests inject one that asks a local DNS
	// server.
	Resolver *net.Resolver
	// Timeout bounds one request, body included. Zero value means 60 s.
	Timeout time.Duration
	// UserAgent: zero value means "Parley".
	UserAgent string
}

// Client is the signed federation client: mautrix's typed client, set up
// with Parley's SSRF guard, TLS policy and resolver. Every method that
// talks to /_matrix/federation signs with X-Matrix. Safe for concurrent use.
type Client struct {
	*federation.Client
	filter *IPFilter // static
}

// NewClient builds a Client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Parley"
	}
	settings := exhttp.ClientSettings{
		GlobalTimeout:         cfg.Timeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		IdleConnTimeout:       90 * time.Second,
		DialTimeout:           10 * time.Second,
		InsecureTLS:           cfg.InsecureSkipVerify,
		TLSConfig:             &tls.Config{MinVersion: tls.VersionTLS12},
	}
	fc := federation.NewClient(cfg.ServerName, cfg.Key, nil, settings)
	filter := NewIPFilter(cfg.AllowIPs)
	// The dialer's control hook runs on the resolved IP of every connection
	// (federation requests and .well-known lookups alike), so a name that
	// resolves to a private address is refused however it was reached.
	fc.AllowIP = filter.Allowed
	fc.UserAgent = cfg.UserAgent
	srt := fc.HTTP.Transport.(*federation.ServerResolvingTransport)
	// Without this the library fetches .well-known with http.DefaultClient:
	// no SSRF guard and no TLS policy. ExtHTTP shares the guarded dialer.
	srt.ResolveOpts = &federation.ResolveServerNameOpts{HTTPClient: fc.ExtHTTP, DNSClient: cfg.Resolver}
	fc.HTTP.Transport = jsonContentType{srt}
	return &Client{Client: fc, filter: filter}
}

// jsonContentType labels request bodies as JSON: mautrix's client sends
// them without a Content-Type, and the spec's federation bodies are all
// JSON; strict peers and proxies may refuse an unlabelled body.
type jsonContentType struct{ next http.RoundTripper }

func (t jsonContentType) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody && r.Header.Get("Content-Type") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Content-Type", "application/json")
	}
	return t.next.RoundTrip(r)
}

// Allowed reports whether outbound federation may dial ip.
func (c *Client) Allowed(ip net.IP) bool { return c.filter.Allowed(ip) }

// Send PUTs one transaction to destination (/_matrix/federation/v1/send)
// and returns the destination's per-PDU results: event ID to error text,
// "" for a PDU it accepted. originTS is the transaction's
// origin_server_ts in ms (0: now); a retry should resend the same one. An
// error means the transaction as a whole was not accepted and must be
// resent with the same txnID.
func (c *Client) Send(ctx context.Context, destination, txnID string, originTS int64, pdus, edus []json.RawMessage) (map[string]string, error) {
	if pdus == nil {
		pdus = []json.RawMessage{} // the spec requires the key
	}
	ts := jsontime.UM(time.Now())
	if originTS != 0 {
		ts = jsontime.UMInt(originTS)
	}
	resp, err := c.SendTransaction(ctx, &federation.ReqSendTransaction{
		Destination:    destination,
		TxnID:          txnID,
		Origin:         c.ServerName,
		OriginServerTS: ts,
		PDUs:           pdus,
		EDUs:           edus,
	})
	if err != nil {
		return nil, fmt.Errorf("send %s to %s: %w", txnID, destination, err)
	}
	out := make(map[string]string, len(resp.PDUs))
	for id, r := range resp.PDUs {
		out[string(id)] = r.Error
	}
	return out, nil
}
