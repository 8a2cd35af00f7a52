package hstest

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver"
)

// FedOptions tune a federating test server.
type FedOptions struct {
	Options
	// Host is the loopback address to listen on, e.g. "127.0.0.2" (Linux
	// routes all of 127/8 to lo). The server name is Host:port.
	Host string
	// Addr, when set, is the exact host:port to listen on instead (a
	// restart under the same server name).
	Addr string
	// Mount runs before the federation listener serves, to add routes
	// (federation/inbound's, or a test's probes) on Fed.Router.Authed.
	Mount func(*homeserver.Federation)
}

// StartFederating starts a server with federation on: a TLS listener on
// Host with a self-signed certificate, the server named after that address
// (port included), loopback allowed for outbound federation and certificate
// checks off, as loopback tests need.
func StartFederating(t testing.TB, o FedOptions) *Server {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	addr := o.Addr
	if addr == "" {
		addr = net.JoinHostPort(o.Host, "0")
	}
	fedLn, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("federation listen on %s: %v", o.Host, err)
	}
	name := fedLn.Addr().String()
	mutate := o.Mutate
	o.Mutate = func(c *config.Config) {
		c.ServerName = name
		c.Federation.Listen = name
		c.Federation.AllowIPs = "127.0.0.0/8"
		c.Federation.InsecureSkipVerify = true
		if mutate != nil {
			mutate(c)
		}
	}
	s := Start(t, o.Options)
	if o.Mount != nil {
		o.Mount(s.Srv.Fed)
	}
	done := make(chan error, 1)
	go func() { done <- s.Srv.ServeFederation(fedLn) }()
	t.Cleanup(func() {
		s.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("federation listener: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("federation listener did not stop")
		}
	})
	s.FedName = name
	s.FedURL = "https://" + name
	return s
}

// Fresh returns st with a new PostgreSQL database of its own (SQLite
// servers get their own data directory anyway): servers that federate must
// not share a store, as real ones never do.
func (st Store) Fresh(t testing.TB) Store {
	if st.URL != "" {
		st.URL = NewPostgresDB(t, os.Getenv("PARLEY_TEST_DATABASE_URL"))
	}
	return st
}

// FedHTTP is an HTTPS client for a test's own requests to federation
// listeners (self-signed certificates accepted).
func FedHTTP() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}
