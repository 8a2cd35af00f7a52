// Command parley-bench puts load on a Matrix homeserver and reports
// throughput and latency. It speaks only the standard client-server API, so
// it can drive Parley, Synapse or any other homeserver alike, and compare
// them on the same machine.
//
// It registers its own users (open registration, or a Synapse-style
// registration shared secret), builds the rooms a scenario needs, then runs
// one scenario for --duration and prints a table (or --json):
//
//	send          N senders in M rooms, closed loop: acknowledged sends/s and send latency
//	latency       U long-polling users, senders at a fixed offered rate: send-to-sync latency
//	fanout        one room of K long-polling members: time until the last member has a message
//	idle          C held long-polls; with --pid, the server's RSS per held sync
//	initial-sync  one user in R rooms with history: initial sync time and size
//
//	go build -o /tmp/pb ./cmd/parley-bench
//	/tmp/pb send --target http://127.0.0.1:8008 --senders 16 --rooms 8 --duration 10s --json
//
// It refuses targets outside 127.0.0.0/8 and ::1 unless --allow-remote is
// given: a load tool pointed at someone else's server by a typo is an attack.
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
)

// Exit codes: 2 means the command line was wrong, 1 that the run failed.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs one command line; a test calls it in-process.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-bench:", err)
		return exitUsage
	}
	if err := checkTarget(ctx, opt.Target, opt.AllowRemote, lookupHost); err != nil {
		fmt.Fprintln(stderr, "parley-bench:", err)
		return exitUsage
	}
	prog := newProgress(stderr, opt.Progress || isTerminal(stderr))
	rep, err := run(ctx, opt, prog)
	if rep != nil {
		if werr := writeReport(stdout, rep, opt.JSON); werr != nil {
			fmt.Fprintln(stderr, "parley-bench: write report:", werr)
			return exitError
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-bench:", err)
		return exitError
	}
	if rep != nil && rep.Interrupted { // a script must not take a partial run for a whole one
		fmt.Fprintln(stderr, "parley-bench: interrupted; the report covers the part that ran")
		return exitError
	}
	return exitOK
}

func writeReport(w io.Writer, rep *report, asJSON bool) error {
	if !asJSON {
		return rep.writeTable(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// isTerminal reports whether w is a character device, which is all the
// progress bar needs to know: a pipe or a file gets no carriage returns.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
