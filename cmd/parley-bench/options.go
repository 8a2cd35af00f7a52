package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// scenarioNames lists the scenarios in the order the usage text gives them.
func scenarioNames() []string {
	return []string{"send", "latency", "fanout", "channel-fanout", "idle", "initial-sync"}
}

// options is one run's parameters. run reads nothing else, so a test can
// call it with its own sizes. A zero size means the scenario's default
// (applyDefaults), because what a sensible --users is differs per scenario.
type options struct {
	Scenario    string
	Target      string // base URL, e.g. http://127.0.0.1:8008
	AllowRemote bool
	JSON        bool
	Progress    bool // force the progress bar even when stderr is not a terminal

	Duration       time.Duration // bound on the measured part of a scenario
	SetupTimeout   time.Duration // bound on registration, rooms, joins and initial syncs
	Drain          time.Duration // after sending stops: time allowed for deliveries still under way
	PollTimeout    time.Duration // the timeout each long-poll /sync asks for
	RequestTimeout time.Duration // bound on every request but long-polls

	Users   int     // latency: long-polling users; idle: distinct users behind the polls
	Rooms   int     // send, latency: rooms; initial-sync: rooms the reader is in
	Senders int     // send, latency, fanout, channel-fanout: sending users
	Rate    float64 // latency: offered messages per second, all senders together
	Members int     // fanout: long-polling members of the one room; channel-fanout: followers of the one channel
	Conns   int     // idle: concurrent long-polls to hold
	Steps   int     // idle: RSS samples at Conns*1/Steps ... Conns
	History int     // initial-sync: messages per room
	PID     int     // idle: server process whose VmRSS to read; 0 = none

	// ServerPprof is the base URL of the server's net/http/pprof listener
	// (parley serve --pprof); with ServerProfile set, fanout saves a CPU
	// profile of the server over exactly its measured window there.
	ServerPprof, ServerProfile string
	// CPUProfile is a file for a CPU profile of the tool itself over the
	// measured window (fanout).
	CPUProfile string

	// SetPresence is every sync's set_presence. The default, offline, keeps
	// syncs from changing presence: with online, a user whose presence
	// changes wakes every long-poll of every room peer, which is real load
	// but not the load a message scenario means to measure.
	SetPresence string

	SharedSecret     string // register through /_synapse/admin/v1/register instead of open registration
	UserPrefix       string // prefix of every localpart; random per run so reruns do not collide
	SetupConcurrency int    // requests in flight during setup
	Warmup           int    // fanout: messages sent and fully delivered before the window opens
	// Pause is how long each fan-out sender waits after a message reached
	// every member before it sends the next. With a pause long enough for
	// every member's next long-poll to arrive, each message wakes parked
	// polls only; with none, messages follow back to back.
	Pause time.Duration
}

// localpartPrefix is what a prefix may hold so that prefix-role123 stays a
// valid Matrix localpart on any server.
var localpartPrefix = regexp.MustCompile(`^[a-z0-9._=-]{1,32}$`)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs, stderr) }
	var o options
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8008", "homeserver base URL")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target outside 127.0.0.0/8 and ::1")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&o.Progress, "progress", false, "show the progress bar even when stderr is not a terminal")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long the scenario runs (setup not included)")
	fs.DurationVar(&o.SetupTimeout, "setup-timeout", 10*time.Minute, "bound on registration, rooms, joins and initial syncs")
	fs.DurationVar(&o.Drain, "drain", 3*time.Second, "latency, fanout, channel-fanout: after sending stops, how long to wait for deliveries still under way")
	fs.DurationVar(&o.PollTimeout, "poll-timeout", 30*time.Second, "timeout each long-poll /sync asks for")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", time.Minute, "bound on every request except long-polls")
	fs.IntVar(&o.Users, "users", 0, "latency: long-polling users (default 50); idle: users behind the polls (default --conns)")
	fs.IntVar(&o.Rooms, "rooms", 0, "send: rooms (default 8); latency: rooms (default 10); initial-sync: rooms the user is in (default 20)")
	fs.IntVar(&o.Senders, "senders", 0, "send (default 16), latency (default 4), fanout and channel-fanout (default 1): sending users")
	fs.Float64Var(&o.Rate, "rate", 0, "latency: offered messages per second, open loop (default 100)")
	fs.IntVar(&o.Members, "members", 0, "fanout: long-polling members of the room; channel-fanout: long-polling followers of the channel (default 100)")
	fs.IntVar(&o.Conns, "conns", 0, "idle: concurrent long-polls to hold (default 1000)")
	fs.IntVar(&o.Steps, "steps", 0, "idle: RSS samples between C/steps and C (default 4)")
	fs.IntVar(&o.History, "history", 0, "initial-sync: messages per room (default 100)")
	fs.IntVar(&o.PID, "pid", 0, "idle: server process ID whose RSS to read from /proc; fanout, channel-fanout: whose CPU time per delivery to report")
	fs.StringVar(&o.ServerPprof, "server-pprof", "", "fanout, channel-fanout: base URL of the server's pprof listener (parley serve --pprof), e.g. http://127.0.0.1:6060")
	fs.StringVar(&o.ServerProfile, "server-profile", "", "fanout, channel-fanout: save a CPU profile of the server over the measured window to this file (needs --server-pprof)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "fanout, channel-fanout: save a CPU profile of this tool over the measured window to this file")
	fs.StringVar(&o.SetPresence, "set-presence", "offline", "set_presence of every sync: offline (no presence changes), online (as Element) or unavailable")
	fs.StringVar(&o.SharedSecret, "shared-secret", "", "register with this secret through /_synapse/admin/v1/register")
	fs.StringVar(&o.UserPrefix, "user-prefix", "", "localpart prefix of the run's users (default pb + random hex)")
	fs.IntVar(&o.SetupConcurrency, "setup-concurrency", 32, "requests in flight during setup")
	fs.IntVar(&o.Warmup, "warmup", 1, "fanout, channel-fanout: messages sent, and awaited by every member, before the measured window")
	fs.DurationVar(&o.Pause, "pause", 0, "fanout, channel-fanout: after a message reached every member, wait this long before the next (0: back to back)")

	// The scenario may come first (pb send --rooms 4) or after the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.Scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	rest := fs.Args()
	if o.Scenario == "" && len(rest) > 0 {
		o.Scenario, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", rest[0])
	}
	if o.Scenario == "" {
		fs.Usage()
		return options{}, errors.New("no scenario given")
	}
	if o.UserPrefix == "" {
		o.UserPrefix = randomPrefix()
	}
	o.applyDefaults()
	return o, o.validate()
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: parley-bench SCENARIO [flags]\n\nscenarios: %s\n\nflags:\n", strings.Join(scenarioNames(), ", "))
	fs.PrintDefaults()
}

// applyDefaults fills the sizes left at zero with the scenario's defaults.
func (o *options) applyDefaults() {
	orDefault := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	switch o.Scenario {
	case "send":
		orDefault(&o.Senders, 16)
		orDefault(&o.Rooms, 8)
	case "latency":
		orDefault(&o.Users, 50)
		orDefault(&o.Senders, 4)
		orDefault(&o.Rooms, 10)
		if o.Rate == 0 {
			o.Rate = 100
		}
	case "fanout", "channel-fanout":
		orDefault(&o.Members, 100)
		orDefault(&o.Senders, 1)
	case "idle":
		orDefault(&o.Conns, 1000)
		orDefault(&o.Users, o.Conns)
		orDefault(&o.Steps, 4)
	case "initial-sync":
		orDefault(&o.Rooms, 20)
		orDefault(&o.History, 100)
	}
}

func (o *options) validate() error {
	var errs []error
	if !slices.Contains(scenarioNames(), o.Scenario) {
		errs = append(errs, fmt.Errorf("unknown scenario %q: want one of %s", o.Scenario, strings.Join(scenarioNames(), ", ")))
	}
	positive := []struct {
		name string
		v    int
	}{{"--users", o.Users}, {"--rooms", o.Rooms}, {"--senders", o.Senders}, {"--members", o.Members},
		{"--conns", o.Conns}, {"--steps", o.Steps}, {"--history", o.History}, {"--setup-concurrency", o.SetupConcurrency}}
	for _, p := range positive {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", p.name))
		}
	}
	if o.SetupConcurrency == 0 {
		errs = append(errs, errors.New("--setup-concurrency must be at least 1"))
	}
	if o.Rate < 0 || (o.Scenario == "latency" && o.Rate == 0) {
		errs = append(errs, errors.New("--rate must be positive"))
	}
	if o.Scenario == "idle" && o.Users > o.Conns {
		errs = append(errs, fmt.Errorf("--users %d is more than --conns %d: every user holds at least one poll", o.Users, o.Conns))
	}
	if o.Scenario == "idle" && o.Steps > o.Conns {
		errs = append(errs, fmt.Errorf("--steps %d is more than --conns %d", o.Steps, o.Conns))
	}
	fanout := o.Scenario == "fanout" || o.Scenario == "channel-fanout"
	if o.PID < 0 || (o.PID > 0 && o.Scenario != "idle" && !fanout) {
		errs = append(errs, errors.New("--pid is for the idle and fan-out scenarios and must be a process ID"))
	}
	if (o.ServerPprof == "") != (o.ServerProfile == "") || (o.ServerProfile != "" && !fanout) {
		errs = append(errs, errors.New("--server-pprof and --server-profile go together, with a fan-out scenario"))
	}
	if o.CPUProfile != "" && !fanout {
		errs = append(errs, errors.New("--cpuprofile is for the fan-out scenarios"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--duration", o.Duration}, {"--setup-timeout", o.SetupTimeout}, {"--poll-timeout", o.PollTimeout}, {"--request-timeout", o.RequestTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	if o.Drain < 0 {
		errs = append(errs, errors.New("--drain must not be negative"))
	}
	if o.Pause < 0 {
		errs = append(errs, errors.New("--pause must not be negative"))
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("--warmup must not be negative"))
	}
	if !slices.Contains([]string{"offline", "online", "unavailable"}, o.SetPresence) {
		errs = append(errs, fmt.Errorf("--set-presence %q: want offline, online or unavailable", o.SetPresence))
	}
	if !localpartPrefix.MatchString(o.UserPrefix) {
		errs = append(errs, fmt.Errorf("--user-prefix %q: want 1 to 32 of a-z 0-9 . _ = -", o.UserPrefix))
	}
	return errors.Join(errs...)
}

// randomPrefix gives each run its own users, so a rerun against the same
// server does not find its names taken.
func randomPrefix() string {
	b := make([]byte, 3)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return "pb" + hex.EncodeToString(b)
}
