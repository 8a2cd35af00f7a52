// Command parley runs the Parley homeserver and its operator tasks.
//
//	parley serve [--config FILE]
//	parley config sample
//	parley user add NAME [--password P] [--admin] [--config FILE]
//	parley user list [--search TERM] [--config FILE]
//	parley user reset-password NAME [--password P] [--logout] [--config FILE]
//	parley user deactivate NAME [--erase] [--config FILE]
//	parley room list [--search TERM] [--config FILE]
//	parley room delete ROOM [--purge] [--config FILE]
//	parley media purge [--user USER] [--before DATE] [--larger-than BYTES] [--config FILE]
//	parley backup DIR [--config FILE]
//	parley restore DIR [--force] [--config FILE]
//	parley doctor [--config FILE]
//	parley version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  parley serve [--config FILE] [--pprof ADDR]  run the homeserver
  parley config sample                         print a commented YAML config
  parley user add NAME [--password P] [--admin] [--config FILE]
                                               create an account
  parley user list [--search TERM] [--config FILE]
                                               list accounts
  parley user reset-password NAME [--password P] [--logout] [--config FILE]
                                               set a new password
  parley user deactivate NAME [--erase] [--config FILE]
                                               deactivate an account (server stopped)
  parley room list [--search TERM] [--config FILE]
                                               list rooms
  parley room delete ROOM [--purge] [--config FILE]
                                               take a room down (server stopped)
  parley media purge [--user USER] [--before DATE] [--larger-than BYTES] [--config FILE]
                                               delete stored media
  parley backup DIR [--config FILE]           back up the database, keys and media
  parley restore DIR [--force] [--config FILE] put a backup back (server stopped)
  parley doctor [--config FILE]                check the deployment
  parley version                               print the version`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, getenv)
	case "config":
		if len(args) == 2 && args[1] == "sample" {
			fmt.Fprint(stdout, config.Sample())
			return nil
		}
		return errors.New(usage)
	case "user":
		if len(args) >= 3 && args[1] == "add" {
			return userAdd(ctx, args[2:], stdout, getenv)
		}
		if len(args) >= 2 && args[1] == "list" {
			return userList(ctx, args[2:], stdout, getenv)
		}
		if len(args) >= 3 && args[1] == "reset-password" {
			return userResetPassword(ctx, args[2:], stdout, getenv)
		}
		if len(args) >= 3 && args[1] == "deactivate" {
			return userDeactivate(ctx, args[2:], stdout, getenv)
		}
		return errors.New(usage)
	case "room":
		if len(args) >= 2 && args[1] == "list" {
			return roomList(ctx, args[2:], stdout, getenv)
		}
		if len(args) >= 3 && args[1] == "delete" {
			return roomDelete(ctx, args[2:], stdout, getenv)
		}
		return errors.New(usage)
	case "media":
		if len(args) >= 2 && args[1] == "purge" {
			return mediaPurge(ctx, args[2:], stdout, getenv)
		}
		return errors.New(usage)
	case "backup":
		return backup(ctx, args[1:], stdout, getenv)
	case "restore":
		return restore(ctx, args[1:], stdout, getenv)
	case "doctor":
		return doctor(ctx, args[1:], stdout, getenv)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "parley", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func loadConfig(path string, getenv func(string) string) (config.Config, error) {
	return config.Load(path, getenv)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file (default: built-in defaults)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopPprof, err := startPprof(*pprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()

	srv, err := homeserver.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("parley is running", "version", version, "server_name", cfg.ServerName,
		"url", "http://"+ln.Addr().String(), "database", srv.Store.Engine(), "data_dir", cfg.DataDir,
		"registration", cfg.Registration.Mode)
	if cfg.Registration.Mode == config.RegistrationClosed {
		log.Info("registration is closed; create the first user with: parley user add NAME --admin")
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if srv.Fed != nil {
		fedLn, err := net.Listen("tcp", cfg.Federation.Listen)
		if err != nil {
			srv.Shutdown(context.Background())
			return fmt.Errorf("federation listen: %w", err)
		}
		log.Info("federation is listening (TLS)", "addr", fedLn.Addr().String())
		go func() { errc <- srv.ServeFederation(fedLn) }()
	}
	select {
	case err := <-errc:
		srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

func userAdd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	name := args[0]
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	pw := fs.String("password", "", "password (default: a random one, printed)")
	makeAdmin := fs.Bool("admin", false, "make the user a server admin")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.HasPrefix(name, "-") {
		return errors.New("user add: NAME comes first: parley user add NAME [--password P] [--admin]")
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	srv, err := homeserver.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	password := *pw
	generated := password == ""
	if generated {
		password = homeserver.RandomPassword()
	}
	// The admin API's code: same checks, and an audit row by "cli".
	userID, err := srv.Admin().CreateUser(ctx, homeserver.CLIActor, admin.NewUser{UserID: name, Password: password, Admin: *makeAdmin})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s", userID)
	if *makeAdmin {
		fmt.Fprint(stdout, " (admin)")
	}
	fmt.Fprintln(stdout)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n", password)
	}
	return nil
}
