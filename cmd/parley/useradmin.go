package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/homeserver"
)

// The user subcommands over package admin: the same code, checks and
// audit rows as the admin API, with "cli" as the actor.

// openServer builds the server (without serving) on the configuration.
func openServer(ctx context.Context, cfgPath string, getenv func(string) string) (*homeserver.Server, error) {
	cfg, err := loadConfig(cfgPath, getenv)
	if err != nil {
		return nil, err
	}
	return homeserver.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func userList(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("user list", flag.ContinueOnError)
	search := fs.String("search", "", "only users whose ID or display name contains this")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := openServer(ctx, *cfgPath, getenv)
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	svc := srv.Admin()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tDISPLAY NAME\tADMIN\tDEACTIVATED\tLAST SEEN")
	p := admin.Page{Limit: admin.MaxLimit}
	for {
		users, next, err := svc.Users(ctx, *search, p)
		if err != nil {
			return err
		}
		for _, u := range users {
			seen := "never"
			if u.LastSeenTS > 0 {
				seen = time.UnixMilli(u.LastSeenTS).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", u.UserID, u.DisplayName, u.Admin, u.Deactivated, seen)
		}
		if next == "" {
			break
		}
		p.From = next
	}
	return tw.Flush()
}

func userResetPassword(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	name := args[0]
	fs := flag.NewFlagSet("user reset-password", flag.ContinueOnError)
	pw := fs.String("password", "", "new password (default: a random one, printed)")
	logout := fs.Bool("logout", false, "also delete every device of the user")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.HasPrefix(name, "-") {
		return errors.New("user reset-password: NAME comes first: parley user reset-password NAME [--password P] [--logout]")
	}
	srv, err := openServer(ctx, *cfgPath, getenv)
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	svc := srv.Admin()
	userID, err := svc.LocalUserID(name)
	if err != nil {
		return err
	}
	password := *pw
	generated := password == ""
	if generated {
		password = homeserver.RandomPassword()
	}
	if err := svc.ResetPassword(ctx, homeserver.CLIActor, userID, password, *logout); err != nil {
		return fmt.Errorf("reset password of %s: %w", userID, err)
	}
	fmt.Fprintf(stdout, "password of %s reset\n", userID)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n", password)
	}
	if *logout {
		fmt.Fprintln(stdout, "devices deleted; a running server accepts their cached access tokens until it restarts: use the admin API to log out at once")
	}
	return nil
}
