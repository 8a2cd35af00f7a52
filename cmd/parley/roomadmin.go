package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver"
)

// The subcommands that write room events: user deactivate and room
// delete. They go through the room writer of the process that runs them,
// so they must not run beside a server on the same database (two writers
// would hand out the same stream positions and build on stale state).
// They refuse when a server answers /healthz at the configured listen
// address, and point to the admin API instead.

// refuseIfServing fails when a Parley server answers at cfg.Listen.
func refuseIfServing(ctx context.Context, cfg config.Config, api string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Listen+"/healthz", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil // nothing listens: the server is stopped
	}
	resp.Body.Close()
	return fmt.Errorf("a server is running at %s: stop it first, or use the admin API (%s) so that the running server makes the change", cfg.Listen, api)
}

// openStopped opens the server's parts after checking that no server runs.
func openStopped(ctx context.Context, cfgPath string, getenv func(string) string, api string) (*homeserver.Server, error) {
	cfg, err := loadConfig(cfgPath, getenv)
	if err != nil {
		return nil, err
	}
	if err := refuseIfServing(ctx, cfg, api); err != nil {
		return nil, err
	}
	return openServer(ctx, cfgPath, getenv)
}

func userDeactivate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	name := args[0]
	fs := flag.NewFlagSet("user deactivate", flag.ContinueOnError)
	erase := fs.Bool("erase", false, "also redact the user's messages and erase the profile")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.HasPrefix(name, "-") {
		return errors.New("user deactivate: NAME comes first: parley user deactivate NAME [--erase]")
	}
	srv, err := openStopped(ctx, *cfgPath, getenv, "POST /_parley/admin/v1/users/{userId}/deactivate")
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	svc := srv.Admin()
	userID, err := svc.LocalUserID(name)
	if err != nil {
		return err
	}
	res, err := svc.Deactivate(ctx, homeserver.CLIActor, userID, *erase)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", userID, err)
	}
	fmt.Fprintf(stdout, "deactivated %s", userID)
	if *erase {
		fmt.Fprintf(stdout, " (erased; %d messages redacted)", res.Redacted)
	}
	fmt.Fprintln(stdout)
	return nil
}

func roomList(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("room list", flag.ContinueOnError)
	search := fs.String("search", "", "only rooms whose ID or a local alias contains this")
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
	fmt.Fprintln(tw, "ROOM\tVERSION\tJOINED\tPUBLIC\tBLOCKED\tCREATOR")
	p := admin.Page{Limit: admin.MaxLimit}
	for {
		rooms, next, err := svc.Rooms(ctx, *search, p)
		if err != nil {
			return err
		}
		for _, r := range rooms {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\t%s\n", r.RoomID, r.Version, r.JoinedMembers, r.Public, r.Blocked, r.Creator)
		}
		if next == "" {
			break
		}
		p.From = next
	}
	return tw.Flush()
}

func roomDelete(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	roomID := args[0]
	fs := flag.NewFlagSet("room delete", flag.ContinueOnError)
	purge := fs.Bool("purge", false, "also delete the room's history and state from the store")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if strings.HasPrefix(roomID, "-") {
		return errors.New("room delete: ROOM comes first: parley room delete ROOM [--purge]")
	}
	srv, err := openStopped(ctx, *cfgPath, getenv, "DELETE /_parley/admin/v1/rooms/{roomId}")
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	progress := func(done, total int) { fmt.Fprintf(stdout, "members out: %d/%d\n", done, total) }
	res, err := srv.Admin().DeleteRoom(ctx, homeserver.CLIActor, roomID, *purge, progress)
	if err != nil {
		return fmt.Errorf("delete %s: %w", roomID, err)
	}
	fmt.Fprintf(stdout, "deleted %s: blocked, %d members out", roomID, len(res.Left))
	if *purge {
		fmt.Fprintf(stdout, ", %d events purged", res.PurgedEvents)
	}
	fmt.Fprintln(stdout)
	return nil
}
