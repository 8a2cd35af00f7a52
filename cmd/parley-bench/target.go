package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"
)

// lookupFunc resolves a host name; tests pass their own so that the check
// needs no DNS.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// checkTarget refuses a base URL whose host is not on this machine unless
// allowRemote is set. Every address the name resolves to must be loopback
// (127.0.0.0/8 or ::1): the HTTP client may dial any of them.
func checkTarget(ctx context.Context, raw string, allowRemote bool, lookup lookupFunc) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--target %q: want an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("--target %q: no host", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("--target %q: want the server's base URL without a path", raw)
	}
	if allowRemote {
		return nil
	}
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		addrs, err = lookup(ctx, host)
		if err != nil {
			return fmt.Errorf("--target %q: resolve %s: %w", raw, host, err)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("--target %q: %s resolves to no address", raw, host)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("--target %q: %s is %s, not loopback (127.0.0.0/8 or ::1); pass --allow-remote to load a server on another machine", raw, host, a)
		}
	}
	return nil
}
