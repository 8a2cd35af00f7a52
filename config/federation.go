package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Federation configures the server-server API. It is off unless Listen is
// set.
type Federation struct {
	// Listen is the host:port the federation listener (TLS) binds, apart
	// from the client listener, e.g. "0.0.0.0:8448". Zero value means
	// federation is off. Env: PARLEY_FEDERATION_LISTEN.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files for the federation listener. Zero
	// values (both) mean a self-signed pair made once in DataDir, for tests
	// only: servers that check certificates refuse it. Env:
	// PARLEY_FEDERATION_TLS_CERT, PARLEY_FEDERATION_TLS_KEY.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowIPs is a comma-separated list of CIDRs (or addresses) that
	// outbound federation may dial although they are loopback, private or
	// otherwise reserved. Zero value means none: such addresses are refused,
	// which keeps a remote server name from pointing us at our own network
	// (SSRF). Env: PARLEY_FEDERATION_ALLOW_IPS.
	AllowIPs string `yaml:"allow_ips"`
	// InsecureSkipVerify skips TLS certificate checks on outbound
	// federation. UNSAFE: anyone on the path can impersonate any server.
	// For loopback tests with self-signed certificates only. Zero value
	// (false) checks certificates. Env: PARLEY_FEDERATION_INSECURE_SKIP_VERIFY.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// WellKnownServer is served as "m.server" at /.well-known/matrix/server
	// (e.g. "matrix.example.org:443"), delegating federation for
	// ServerName to that host. Zero value means none (404).
	WellKnownServer string `yaml:"well_known_server"`
	// KeyNotaries is a comma-separated list of server names asked for other
	// servers' signing keys before the servers themselves (Synapse's
	// trusted_key_servers). Zero value means none: keys are fetched directly.
	KeyNotaries string `yaml:"key_notaries"`
	// KeyValidityHours is how long this server's published key response
	// says it is valid. Zero value means 24: remote servers refetch daily.
	KeyValidityHours int `yaml:"key_validity_hours"`
	// RetryMinMS is the wait, in milliseconds, before the first retry to a
	// destination that failed; it doubles per failure up to RetryMaxMS
	// (with ±50 % jitter). Zero value means 2000. Tests that restart a
	// server lower it so catch-up starts at once. Env:
	// PARLEY_FEDERATION_RETRY_MIN_MS.
	RetryMinMS int `yaml:"retry_min_ms"`
	// RetryMaxMS caps the wait between retries, in milliseconds. Zero
	// value means 3600000 (1 h): a server gone for days is not hammered.
	// Env: PARLEY_FEDERATION_RETRY_MAX_MS.
	RetryMaxMS int `yaml:"retry_max_ms"`
}

// RetryMin is RetryMinMS as a duration (defaults filled).
func (f Federation) RetryMin() time.Duration { return time.Duration(f.RetryMinMS) * time.Millisecond }

// RetryMax is RetryMaxMS as a duration (defaults filled).
func (f Federation) RetryMax() time.Duration { return time.Duration(f.RetryMaxMS) * time.Millisecond }

// AllowPrefixes parses AllowIPs (already validated).
func (f Federation) AllowPrefixes() []netip.Prefix {
	out, _ := parsePrefixes(f.AllowIPs)
	return out
}

// Notaries splits KeyNotaries.
func (f Federation) Notaries() []string { return splitList(f.KeyNotaries) }

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", item)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (f *Federation) fillDefaults() {
	setDefault(&f.KeyValidityHours, 24)
	setDefault(&f.RetryMinMS, 2000)
	setDefault(&f.RetryMaxMS, 3600000)
}

func (f Federation) validate() error {
	var errs []error
	if f.Listen != "" {
		if err := checkListen(f.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %w", err))
		}
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key: set both or neither"))
	}
	if _, err := parsePrefixes(f.AllowIPs); err != nil {
		errs = append(errs, fmt.Errorf("allow_ips: %w", err))
	}
	if f.WellKnownServer != "" {
		if err := checkServerName(f.WellKnownServer); err != nil {
			errs = append(errs, fmt.Errorf("well_known_server: %w", err))
		}
	}
	for _, n := range f.Notaries() {
		if err := checkServerName(n); err != nil {
			errs = append(errs, fmt.Errorf("key_notaries: %w", err))
		}
	}
	if f.KeyValidityHours < 0 || f.KeyValidityHours > 24*365 {
		errs = append(errs, fmt.Errorf("key_validity_hours: %d is outside 0 to %d", f.KeyValidityHours, 24*365))
	}
	if f.RetryMinMS < 0 || f.RetryMaxMS < 0 || (f.RetryMaxMS > 0 && f.RetryMaxMS < f.RetryMinMS) {
		errs = append(errs, fmt.Errorf("retry_min_ms %d and retry_max_ms %d: want 0 <= min <= max", f.RetryMinMS, f.RetryMaxMS))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("federation: %w", errors.Join(errs...))
}

// applyFederationEnv applies the PARLEY_FEDERATION_* variables:
//
//	PARLEY_FEDERATION_LISTEN                federation.listen
//	PARLEY_FEDERATION_TLS_CERT              federation.tls_cert
//	PARLEY_FEDERATION_TLS_KEY               federation.tls_key
//	PARLEY_FEDERATION_ALLOW_IPS             federation.allow_ips
//	PARLEY_FEDERATION_INSECURE_SKIP_VERIFY  federation.insecure_skip_verify (true/false)
//	PARLEY_FEDERATION_RETRY_MIN_MS          federation.retry_min_ms
//	PARLEY_FEDERATION_RETRY_MAX_MS          federation.retry_max_ms
func (c *Config) applyFederationEnv(getenv func(string) string) error {
	var errs []error
	set := func(name string, field *string, check func(string) error) {
		v := getenv(name)
		if v == "" {
			return
		}
		if check != nil {
			if err := check(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
		}
		*field = v
	}
	f := &c.Federation
	set("PARLEY_FEDERATION_LISTEN", &f.Listen, checkListen)
	set("PARLEY_FEDERATION_TLS_CERT", &f.TLSCert, nil)
	set("PARLEY_FEDERATION_TLS_KEY", &f.TLSKey, nil)
	set("PARLEY_FEDERATION_ALLOW_IPS", &f.AllowIPs, func(s string) error { _, err := parsePrefixes(s); return err })
	if v := getenv("PARLEY_FEDERATION_INSECURE_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PARLEY_FEDERATION_INSECURE_SKIP_VERIFY: %q is not true or false", v))
		} else {
			f.InsecureSkipVerify = b
		}
	}
	for _, e := range []struct {
		name  string
		field *int
	}{{"PARLEY_FEDERATION_RETRY_MIN_MS", &f.RetryMinMS}, {"PARLEY_FEDERATION_RETRY_MAX_MS", &f.RetryMaxMS}} {
		name, field := e.name, e.field
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a whole number of milliseconds", name, v))
				continue
			}
			*field = n
		}
	}
	return errors.Join(errs...)
}
