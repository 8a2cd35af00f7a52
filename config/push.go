package config

import (
	"errors"
	"fmt"
	"net/netip"
)

// Push configures delivery to push gateways (package push).
type Push struct {
	// AllowIPs is a comma-separated list of CIDRs (or addresses) that push
	// delivery may dial although they are loopback, private or otherwise
	// reserved. Zero value means none: a pusher's data.url is chosen by a
	// user, and must not reach the server's own network (SSRF). Tests
	// allow 127.0.0.0/8.
	AllowIPs string `yaml:"allow_ips"`
	// MaxQueue caps the notifications waiting per pusher; past it the
	// oldest is dropped (logged, and counted in
	// parley_push_dropped_total). Zero value means 1000: a phone that has
	// been unreachable that long only needs the latest ones.
	MaxQueue int `yaml:"max_queue"`
	// MinBackoffMs is the wait after a gateway's first failure; it doubles
	// per failure. Zero value means 1000.
	MinBackoffMs int64 `yaml:"min_backoff_ms"`
	// MaxBackoffMs caps the wait between retries (before ±50 % jitter).
	// Zero value means 600000 (10 minutes).
	MaxBackoffMs int64 `yaml:"max_backoff_ms"`
	// TimeoutMs bounds one request to a gateway. Zero value means 10000.
	TimeoutMs int64 `yaml:"timeout_ms"`
	// MaxPushersPerUser caps a user's pushers; more get 400
	// M_LIMIT_EXCEEDED. Zero value means 100.
	MaxPushersPerUser int `yaml:"max_pushers_per_user"`
}

// AllowPrefixes parses AllowIPs (already validated).
func (p Push) AllowPrefixes() []netip.Prefix {
	out, _ := parsePrefixes(p.AllowIPs)
	return out
}

func (p Push) validate() error {
	var errs []error
	if _, err := parsePrefixes(p.AllowIPs); err != nil {
		errs = append(errs, fmt.Errorf("allow_ips: %w", err))
	}
	for name, v := range map[string]int64{"max_queue": int64(p.MaxQueue), "min_backoff_ms": p.MinBackoffMs,
		"max_backoff_ms": p.MaxBackoffMs, "timeout_ms": p.TimeoutMs, "max_pushers_per_user": int64(p.MaxPushersPerUser)} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", name, v))
		}
	}
	return errors.Join(errs...)
}

func (p *Push) fillDefaults() {
	setDefault(&p.MaxQueue, 1000)
	setDefault(&p.MinBackoffMs, 1000)
	setDefault(&p.MaxBackoffMs, 600000)
	setDefault(&p.TimeoutMs, 10000)
	setDefault(&p.MaxPushersPerUser, 100)
}
