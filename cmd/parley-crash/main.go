// Command parley-crash proves Parley's delivery contract under kill -9.
//
// It starts the real parley binary, has many clients send messages with
// txnIds while a killer SIGKILLs and restarts the server at seeded random
// moments, then reads every room back through /messages and through an
// initial /sync on every member's every device. It exits 1 when a promise
// is broken: an acknowledged message lost or duplicated, an unacknowledged
// one stored twice, rooms whose order differs between readers or contradicts
// a sender's order, or a message nobody sent. It exits 2 when the run itself
// could not be carried out (build, setup, restart or time-out failures).
//
//	go run ./cmd/parley-crash --store sqlite
//	go run ./cmd/parley-crash --store postgres --database-url 'postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is one run's parameters. run reads nothing else, so a test can call
// it in-process with its own sizes.
type config struct {
	Parley      string // server binary; "" builds ./cmd/parley (without -race)
	Store       string // "sqlite" or "postgres"
	DatabaseURL string // PostgreSQL admin URL on a loopback host; a fresh database is created in it
	Clients     int    // users, one sending goroutine each
	Rooms       int    // half DMs (2 members), the rest groups of up to 10
	Sends       int    // messages in total, shared between the clients
	Kills       int    // SIGKILLs during the sending (one more follows the last send)
	Seed        uint64 // layout, room choice and kill moments; 0 picks one from the clock
	Timeout     time.Duration
	// SendTimeout bounds one send request, so that a kill shows up as an
	// error quickly instead of a hung client.
	SendTimeout time.Duration
	// Progress gets one line per phase, kill and restart; nil discards them.
	Progress io.Writer
}

// Exit codes: the report decides between 0 and 1; 2 means no verdict.
const (
	exitOK     = 0
	exitBroken = 1
	exitError  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

func cli(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg, asJSON, err := parseFlags(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-crash:", err)
		return exitError
	}
	cfg.Progress = stderr
	rep, err := run(ctx, cfg)
	if rep != nil {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				fmt.Fprintln(stderr, "parley-crash: write report:", err)
			}
		} else {
			rep.writeText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-crash:", err)
	}
	switch {
	case rep != nil && rep.Broken(): // a broken promise outranks an incomplete run
		return exitBroken
	case err != nil:
		return exitError
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (config, bool, error) {
	fs := flag.NewFlagSet("parley-crash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.Parley, "parley", "", "parley binary (default: go build ./cmd/parley into a temp dir)")
	fs.StringVar(&cfg.Store, "store", "sqlite", "sqlite or postgres")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL admin URL on 127.0.0.1 (default $PARLEY_TEST_DATABASE_URL); a fresh database is created")
	fs.IntVar(&cfg.Clients, "clients", 50, "sending users")
	fs.IntVar(&cfg.Rooms, "rooms", 20, "rooms (half DMs, half groups of 10)")
	fs.IntVar(&cfg.Sends, "sends", 10000, "messages in total")
	fs.IntVar(&cfg.Kills, "kills", 5, "SIGKILLs during the sending")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock; the report prints it)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.DurationVar(&cfg.Timeout, "timeout", 20*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return config{}, false, err
	}
	if fs.NArg() > 0 {
		return config{}, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Store == "postgres" && cfg.DatabaseURL == "" {
		cfg.DatabaseURL = getenv("PARLEY_TEST_DATABASE_URL")
	}
	return cfg, *asJSON, cfg.validate()
}

// validate refuses sizes the scenario cannot lay out and any database that
// is not on this machine: the harness creates and drops databases.
func (c *config) validate() error {
	var errs []error
	switch c.Store {
	case "sqlite":
		if c.DatabaseURL != "" {
			errs = append(errs, errors.New("--database-url is only for --store postgres"))
		}
	case "postgres":
		if c.DatabaseURL == "" {
			errs = append(errs, errors.New("--store postgres needs --database-url or PARLEY_TEST_DATABASE_URL"))
		} else if err := checkLoopbackURL(c.DatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("--database-url: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: want sqlite or postgres", c.Store))
	}
	if c.Clients < 2 {
		errs = append(errs, errors.New("--clients must be at least 2"))
	}
	if c.Rooms < 1 {
		errs = append(errs, errors.New("--rooms must be at least 1"))
	}
	if c.Sends < 1 {
		errs = append(errs, errors.New("--sends must be at least 1"))
	}
	if c.Kills < 0 {
		errs = append(errs, errors.New("--kills must not be negative"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("--timeout must be positive"))
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	return errors.Join(errs...)
}
