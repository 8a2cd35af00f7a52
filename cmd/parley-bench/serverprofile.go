package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// serverProfile asks the server's pprof listener for a CPU profile of the
// next d and saves it to path. It runs alongside the measured window, so
// the profile shows the steady state (deliveries) and not the setup
// (registrations and joins), which would otherwise dominate it. The
// returned wait blocks until the profile is saved and gives its error.
func serverProfile(ctx context.Context, pprofURL, path string, d time.Duration) (wait func() error) {
	errc := make(chan error, 1)
	go func() { errc <- fetchProfile(ctx, pprofURL, path, d) }()
	return func() error { return <-errc }
}

func fetchProfile(ctx context.Context, pprofURL, path string, d time.Duration) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	u := strings.TrimSuffix(pprofURL, "/") + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("server profile: HTTP %d: %s", resp.StatusCode, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("server profile: %w", err)
	}
	return f.Close()
}

// selfProfile starts a CPU profile of this process into path; the
// returned stop ends it. An empty path profiles nothing.
func selfProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
