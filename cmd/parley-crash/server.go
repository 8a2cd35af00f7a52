package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// serverConfig turns rate limits off (50 clients hammering one address would
// otherwise measure the limiter, not durability) and makes password hashing
// cheap, since the harness registers many accounts and durability does not
// depend on the hash cost.
const serverConfig = `rate_limit:
  enabled: false
passwords:
  argon2_memory_kib: 64
  argon2_time: 1
`

// buildParley compiles the server into dir. It never adds -race, even when
// the caller's GOFLAGS asks for it: under `go test -race` only the client
// side should pay for instrumentation, or the server is too slow to be
// killed at interesting moments.
func buildParley(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "parley")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/parley-im/parley/cmd/parley")
	cmd.Env = withoutRace(os.Environ())
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/parley (run from inside the module, or pass --parley): %w\n%s", err, out)
	}
	return bin, nil
}

func withoutRace(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			var keep []string
			for _, f := range strings.Fields(v) {
				if f != "-race" && f != "--race" && f != "-race=true" {
					keep = append(keep, f)
				}
			}
			kv = "GOFLAGS=" + strings.Join(keep, " ")
		}
		out = append(out, kv)
	}
	return out
}

// checkLoopbackURL accepts only URLs whose host is this machine: the harness
// creates and force-drops databases and must never be pointed elsewhere.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("want a URL such as postgres://postgres@127.0.0.1:5432/postgres")
	}
	switch host := u.Hostname(); host {
	case "127.0.0.1", "localhost", "::1":
		return nil
	default:
		return fmt.Errorf("host %q is not loopback; only 127.0.0.1 targets are allowed", host)
	}
}

// createDatabase makes a fresh database next to the admin URL's and returns
// its URL, its name, and a cleanup that drops it unless told to keep it as
// evidence.
func createDatabase(ctx context.Context, admin string, seed uint64) (string, string, func(keep bool), error) {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", "", nil, fmt.Errorf("open admin database: %w", err)
	}
	name := fmt.Sprintf("parley_crash_%d_%d", seed, time.Now().UnixNano()%1e9)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		// A cancelled CREATE may still have happened: do not leak it.
		dropCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(dropCtx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		db.Close()
		return "", "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, _ := url.Parse(admin) // checked by checkLoopbackURL
	u.Path = "/" + name
	cleanup := func(keep bool) {
		defer db.Close()
		if keep {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), name, cleanup, nil
}

// server runs parley as a child process, so that it can be SIGKILLed and
// restarted on the same data directory and database like a real crash.
type server struct {
	bin, dir, dbURL, addr string
	logPath               string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been reaped
	killing bool          // our own SIGKILL: not a crash
	starts  int
	died    chan error // an exit nobody asked for; buffered
}

func newServer(bin, dir, dbURL string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := os.WriteFile(filepath.Join(dir, "parley.yaml"), []byte(serverConfig), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return &server{bin: bin, dir: dir, dbURL: dbURL, addr: addr,
		logPath: filepath.Join(dir, "server.log"), died: make(chan error, 1)}, nil
}

func (s *server) url() string { return "http://" + s.addr }

// start launches the server and returns once it answers /versions.
func (s *server) start(ctx context.Context) (time.Duration, error) {
	began := time.Now()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("server log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	s.mu.Lock()
	s.starts++
	fmt.Fprintf(logf, "--- parley-crash: start %d at %s\n", s.starts, began.Format(time.RFC3339Nano))
	s.mu.Unlock()

	cmd := exec.Command(s.bin, "serve", "--config", filepath.Join(s.dir, "parley.yaml"))
	cmd.Env = append(withoutParleyEnv(os.Environ()),
		"PARLEY_LISTEN="+s.addr, "PARLEY_DATA_DIR="+filepath.Join(s.dir, "data"),
		"PARLEY_DATABASE_URL="+s.dbURL, "PARLEY_REGISTRATION=open", "PARLEY_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		ours := s.killing
		s.mu.Unlock()
		if !ours {
			select {
			case s.died <- fmt.Errorf("server exited by itself (%v); see %s", err, s.logPath):
			default:
			}
		}
		close(exited)
	}()
	if err := s.waitReady(ctx, exited); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}

// withoutParleyEnv drops the caller's PARLEY_* settings so that only the
// harness's configuration reaches the server.
func withoutParleyEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PARLEY_") {
			out = append(out, kv)
		}
	}
	return out
}

// waitReady polls GET /_matrix/client/versions, the way a load balancer
// would, for up to a minute.
func (s *server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url()+"/_matrix/client/versions", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited while starting; see %s", s.logPath)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the server: %w", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after a minute; see %s", s.logPath)
		}
	}
}

// kill sends SIGKILL and waits until the process is reaped, so that a
// restart never races the old process for the port or the database.
func (s *server) kill() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.killing = cmd != nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer func() {
		s.mu.Lock()
		s.killing, s.cmd = false, nil
		s.mu.Unlock()
	}()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	<-exited
	return nil
}
