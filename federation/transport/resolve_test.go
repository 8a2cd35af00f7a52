package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	"maunium.net/go/mautrix/federation"
)

// fakeDNS answers SRV queries from a table over UDP on loopback; any other
// name is NXDOMAIN. It stands in for the DNS so the resolution order can be
// tested without the network.
type fakeDNS struct {
	conn net.PacketConn
	srv  map[string]net.SRV // "_matrix-fed._tcp.host." -> record
}

func startFakeDNS(t *testing.T, srv map[string]net.SRV) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{conn: pc, srv: srv}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.serve() }()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, addr, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
		rec, ok := d.srv[strings.ToLower(q.Name.String())]
		if !ok || q.Type != dnsmessage.TypeSRV {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if ok && q.Type == dnsmessage.TypeSRV {
			b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
				dnsmessage.SRVResource{Priority: rec.Priority, Weight: rec.Weight, Port: rec.Port,
					Target: dnsmessage.MustNewName(rec.Target)})
		}
		out, err := b.Finish()
		if err != nil {
			continue
		}
		d.conn.WriteTo(out, addr)
	}
}

// TestResolutionOrder runs mautrix's resolver (the one the Client uses)
// through the spec's steps: IP literal, explicit port, .well-known (served
// by a loopback HTTPS server), SRV _matrix-fed._tcp then _matrix._tcp, and
// port 8448.
func TestResolutionOrder(t *testing.T) {
	var mu sync.Mutex
	wkHits := map[string]int{}
	wk := map[string]string{
		"wk-port.test": `{"m.server":"target.test:4443"}`,
		"wk-ip.test":   `{"m.server":"10.9.8.7"}`,
		"wk-srv.test":  `{"m.server":"delegated.test"}`,
		"wk-bad.test":  `{"m.server":""}`,
	}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		mu.Lock()
		wkHits[host]++
		mu.Unlock()
		body, ok := wk[host]
		if !ok || r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	defer tlsSrv.Close()
	// Every https://<name>/.well-known request goes to the test server.
	httpClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, tlsSrv.Listener.Addr().String())
		},
	}}
	dns := startFakeDNS(t, map[string]net.SRV{
		"_matrix-fed._tcp.delegated.test.": {Target: "fed-host.test.", Port: 7777},
		"_matrix-fed._tcp.srv.test.":       {Target: "fed-host.test.", Port: 8800},
		"_matrix._tcp.legacy.test.":        {Target: "old-host.test.", Port: 8801},
		// both exist: the new name wins
		"_matrix-fed._tcp.both.test.": {Target: "new.test.", Port: 1},
		"_matrix._tcp.both.test.":     {Target: "old.test.", Port: 2},
	})
	opts := &federation.ResolveServerNameOpts{HTTPClient: httpClient, DNSClient: dns}
	for _, tc := range []struct {
		name, wantAddr, wantHost string
		wantWellKnown            bool // whether .well-known was asked
	}{
		{"1.2.3.4", "1.2.3.4:8448", "1.2.3.4", false},
		{"1.2.3.4:9000", "1.2.3.4:9000", "1.2.3.4:9000", false},
		{"[::1]", "[::1]:8448", "[::1]", false},
		{"explicit.test:1234", "explicit.test:1234", "explicit.test:1234", false},
		{"wk-port.test", "target.test:4443", "target.test:4443", true},
		{"wk-ip.test", "10.9.8.7:8448", "10.9.8.7", true},
		{"wk-srv.test", "fed-host.test:7777", "delegated.test", true},
		{"wk-bad.test", "wk-bad.test:8448", "wk-bad.test", true}, // invalid .well-known: ignored
		{"srv.test", "fed-host.test:8800", "srv.test", true},
		{"legacy.test", "old-host.test:8801", "legacy.test", true},
		{"both.test", "new.test:1", "both.test", true},
		{"plain.test", "plain.test:8448", "plain.test", true},
	} {
		got, err := federation.ResolveServerName(context.Background(), tc.name, opts)
		if err != nil {
			t.Errorf("ResolveServerName(%s) error %v", tc.name, err)
			continue
		}
		if len(got.IPPort) == 0 || got.IPPort[0] != tc.wantAddr || got.HostHeader != tc.wantHost {
			t.Errorf("ResolveServerName(%s) = %v host %q, want %s host %q", tc.name, got.IPPort, got.HostHeader, tc.wantAddr, tc.wantHost)
		}
		host, _, err := net.SplitHostPort(tc.name)
		if err != nil {
			host = tc.name
		}
		mu.Lock()
		asked := wkHits[host] > 0
		mu.Unlock()
		if asked != tc.wantWellKnown {
			t.Errorf("ResolveServerName(%s): .well-known asked = %v, want %v", tc.name, asked, tc.wantWellKnown)
		}
	}
}

// TestClientGuardsWellKnown: the Client hands the library a .well-known
// HTTP client that dials through the SSRF guard, not http.DefaultClient.
func TestClientGuardsWellKnown(t *testing.T) {
	c := NewClient(ClientConfig{ServerName: "a.example"})
	srt := c.HTTP.Transport.(jsonContentType).next.(*federation.ServerResolvingTransport)
	if srt.ResolveOpts == nil || srt.ResolveOpts.HTTPClient == nil || srt.ResolveOpts.HTTPClient == http.DefaultClient {
		t.Fatalf("ResolveOpts = %+v, want Parley's guarded client", srt.ResolveOpts)
	}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"m.server":"x.test"}`))
	}))
	defer tlsSrv.Close()
	_, _, err := federation.RequestWellKnown(context.Background(), srt.ResolveOpts.HTTPClient, tlsSrv.Listener.Addr().String())
	if err == nil || !strings.Contains(err.Error(), federation.ErrIPFiltered.Error()) {
		t.Errorf(".well-known from a loopback address = %v, want it refused by the IP filter", err)
	}
}

// TestSSRFGuardOnResolvedName: the guard runs on the dialled IP, so a DNS
// name that resolves to loopback is refused like the literal.
func TestSSRFGuardOnResolvedName(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"server":{"name":"stub","version":"1"}}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	name := "localhost:" + port // a name, not an IP: resolved at dial time
	ctx := context.Background()
	guarded := NewClient(ClientConfig{ServerName: "a.example", InsecureSkipVerify: true})
	if _, err := guarded.Version(ctx, name); err == nil || !strings.Contains(err.Error(), federation.ErrIPFiltered.Error()) {
		t.Errorf("Version(%s) without allowlist = %v, want refused by the IP filter", name, err)
	}
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	open := NewClient(ClientConfig{ServerName: "a.example", InsecureSkipVerify: true, AllowIPs: allow})
	if v, err := open.Version(ctx, name); err != nil || v.Server.Name != "stub" {
		t.Errorf("Version(%s) with loopback allowed = %+v, %v; want the stub", name, v, err)
	}
}
