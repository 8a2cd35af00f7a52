package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/parley-im/parley/homeserver"
	"github.com/parley-im/parley/media"
)

// mediaPurge runs parley media purge: the admin API's POST /media/purge
// on the box. It only touches media files, so it may run beside a
// server; that server's quota sums then count the deleted bytes until it
// restarts (stricter, never looser).
func mediaPurge(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("media purge", flag.ContinueOnError)
	user := fs.String("user", "", "only media uploaded by this local user")
	before := fs.String("before", "", "only media uploaded before this date (2006-01-02 or RFC 3339)")
	larger := fs.Int64("larger-than", 0, "only media of more bytes than this")
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f := media.Filter{LargerThan: *larger}
	if *before != "" {
		t, err := time.Parse(time.RFC3339, *before)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, *before); err != nil {
				return fmt.Errorf("media purge: --before %q is not a date (2006-01-02 or RFC 3339)", *before)
			}
		}
		f.BeforeTS = t.UnixMilli()
	}
	srv, err := openServer(ctx, *cfgPath, getenv)
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	svc := srv.Admin()
	if *user != "" {
		if f.Uploader, err = svc.LocalUserID(*user); err != nil {
			return err
		}
	}
	progress := func(done int) {
		if done%100 == 0 {
			fmt.Fprintf(stdout, "deleted %d items so far\n", done)
		}
	}
	res, err := svc.PurgeMedia(ctx, homeserver.CLIActor, f, progress)
	if err != nil {
		return fmt.Errorf("media purge: %w", err)
	}
	fmt.Fprintf(stdout, "deleted %d media items, freed %d bytes\n", len(res.Deleted), res.Bytes)
	return nil
}
