package homeserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/federation/keys"
	"github.com/parley-im/parley/federation/transport"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Federation is the server-server side of a homeserver: its keys, its signed
// client and its router. Nil on a Server whose federation is off. Static
// after newFederation.
type Federation struct {
	Keys   *keys.Keyring
	Client *transport.Client
	Auth   *transport.Authenticator
	// Router serves the federation listener. federation/inbound mounts its
	// routes on Router.Authed before ServeFederation.
	Router *transport.Router
	// Inbound serves /send; set by wireFederation (fedwire.go).
	Inbound *inbound.Handler
	tls     *tls.Config
}

// newFederation records the signing key as current (retiring any other, so
// a key rotated while federation was off still reaches old_verify_keys)
// and builds the federation parts when cfg.Federation.Listen is set; nil
// otherwise.
func newFederation(ctx context.Context, cfg config.Config, store *storage.Store, key *pdu.SigningKey, log *slog.Logger) (*Federation, error) {
	fc := cfg.Federation
	own, err := keys.NewOwn(ctx, store, key, time.Duration(fc.KeyValidityHours)*time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	if fc.Listen == "" {
		return nil, nil
	}
	tlsCfg, selfSigned, err := transport.LoadTLS(fc.TLSCert, fc.TLSKey, cfg.DataDir, hostOf(cfg.ServerName))
	if err != nil {
		return nil, err
	}
	if selfSigned {
		log.Warn("federation uses a self-signed TLS certificate: for tests only; servers that check certificates will refuse it",
			"cert", transport.SelfSignedCert, "data_dir", cfg.DataDir)
	}
	if fc.InsecureSkipVerify {
		log.Warn("federation.insecure_skip_verify is on: outbound TLS certificates are not checked (unsafe outside loopback tests)")
	}
	client := transport.NewClient(transport.ClientConfig{ServerName: cfg.ServerName, Key: own.SigningKey(),
		AllowIPs: fc.AllowPrefixes(), InsecureSkipVerify: fc.InsecureSkipVerify, UserAgent: "Parley/" + parleyVersion()})
	ring := keys.New(keys.Config{Own: own, Store: store, Fetch: client, Notaries: fc.Notaries(), Logger: log})
	auth := transport.NewAuthenticator(cfg.ServerName, ring, 0)
	router := transport.NewRouter(transport.RouterConfig{Keys: ring, Auth: auth, Name: "Parley", Version: parleyVersion(),
		WellKnownServer: fc.WellKnownServer})
	return &Federation{Keys: ring, Client: client, Auth: auth, Router: router, tls: tlsCfg}, nil
}

// hostOf strips the port from a server name, for the certificate.
func hostOf(serverName string) string {
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		return h
	}
	return serverName
}

// parleyVersion is the module version from the build, as /version reports.
func parleyVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// withWellKnownServer serves /.well-known/matrix/server on the client
// listener too when configured: remote servers look for it on port 443 of
// the server name, usually the client-facing proxy.
func withWellKnownServer(next http.Handler, target string) http.Handler {
	if target == "" {
		return next
	}
	wk := transport.WellKnownHandler(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/matrix/server" && r.Method == http.MethodGet {
			wk(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeFederation answers federation over TLS on ln until Shutdown. It
// returns nil after a clean stop, and an error when federation is off.
func (s *Server) ServeFederation(ln net.Listener) error {
	if s.Fed == nil {
		return errors.New("federation is off (federation.listen is empty)")
	}
	idle := time.Duration(s.cfg.HTTP.BodyIdleTimeoutMs) * time.Millisecond
	if idle <= 0 {
		idle = 30 * time.Second
	}
	srv := &http.Server{Handler: withBodyIdleTimeout(s.Fed.Router, idle), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * idle, IdleTimeout: 120 * time.Second, TLSConfig: s.Fed.tls,
		// A public federation port sees scanners and failed handshakes all
		// day: log them at debug, not on stderr.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.fedHTTP = srv
	s.mu.Unlock()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("federation listener: %w", err)
	}
	return nil
}

// shutdownFederation stops the federation listener, if one runs.
func (s *Server) shutdownFederation(ctx context.Context) error {
	s.mu.Lock()
	srv := s.fedHTTP
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return err
	}
	return nil
}
