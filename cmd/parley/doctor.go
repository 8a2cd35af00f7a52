package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Doctor's thresholds.
const (
	doctorMinFreeBytes   = 1 << 30 // below this much free space a data or media dir fails
	doctorWarnFreeRatio  = 0.10    // below this share free it warns
	doctorMaxClockSkew   = 5 * time.Second
	doctorPublicTimeout  = 5 * time.Second
	doctorFutureEventGap = time.Minute
)

// checkResult is one line of parley doctor.
type checkResult struct {
	status string // ok, warn, FAIL, skip
	name   string
	detail string
}

func doctor(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var results []checkResult
	add := func(status, name, format string, a ...any) {
		r := checkResult{status, name, fmt.Sprintf(format, a...)}
		results = append(results, r)
		fmt.Fprintf(stdout, "%-4s  %-11s  %s\n", r.status, r.name, r.detail)
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		add("FAIL", "config", "%v", err)
		return errors.New("doctor: 1 check failed")
	}
	where := *cfgPath
	if where == "" {
		where = "defaults and environment"
	}
	add("ok", "config", "%s: server_name %s, listen %s", where, cfg.ServerName, cfg.Listen)

	doctorStore(ctx, cfg, add)
	doctorDisk(cfg, add)
	doctorKey(cfg, add)
	doctorPublicURL(ctx, cfg, add)

	failed := 0
	for _, r := range results {
		if r.status == "FAIL" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}

// doctorStore checks that the store answers and is migrated, and the
// clocks: the database server's against ours (PostgreSQL), and ours
// against the newest stored event (a clock that went backwards).
func doctorStore(ctx context.Context, cfg config.Config, add func(status, name, format string, a ...any)) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	in, err := storage.Inspect(ctx, cfg.DatabaseURL, cfg.SQLitePath())
	if err != nil {
		add("FAIL", "store", "%v", err)
		add("skip", "clock", "the store did not answer")
		return
	}
	switch {
	case in.SchemaVersion > in.KnownVersion:
		add("FAIL", "store", "%s: schema version %d is newer than this parley knows (%d): run the parley that upgraded it", in.Engine, in.SchemaVersion, in.KnownVersion)
	case in.SchemaVersion < in.KnownVersion:
		add("warn", "store", "%s: schema version %d, this parley migrates it to %d on its next start", in.Engine, in.SchemaVersion, in.KnownVersion)
	default:
		add("ok", "store", "%s: reachable, schema version %d (current)", in.Engine, in.SchemaVersion)
	}
	now := time.Now()
	if !in.DBClock.IsZero() {
		skew := now.Sub(in.DBClock)
		if skew.Abs() > doctorMaxClockSkew {
			add("FAIL", "clock", "this machine's clock is %s off the database server's (more than %s): fix NTP", skew.Round(time.Millisecond), doctorMaxClockSkew)
			return
		}
		add("ok", "clock", "within %s of the database server's", skew.Abs().Round(time.Millisecond))
	}
	if !in.NewestEventTS.IsZero() && in.NewestEventTS.Sub(now) > doctorFutureEventGap {
		add("warn", "clock", "the newest stored event is dated %s, %s ahead of this machine's clock: did the clock go backwards?",
			in.NewestEventTS.UTC().Format(time.RFC3339), in.NewestEventTS.Sub(now).Round(time.Second))
		return
	}
	if in.DBClock.IsZero() {
		add("ok", "clock", "%s; no stored event is dated in the future", now.UTC().Format(time.RFC3339))
	}
}

// doctorDisk checks the free space where the database (SQLite) and the
// media are written.
func doctorDisk(cfg config.Config, add func(status, name, format string, a ...any)) {
	dirs := []struct{ name, path string }{{"data dir", cfg.DataDir}, {"media dir", filepath.Join(cfg.DataDir, "media")}}
	for _, d := range dirs {
		path := d.path
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			path = filepath.Dir(path) // not created yet: where it will be
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			add("FAIL", "disk", "%s %s: %v", d.name, d.path, err)
			continue
		}
		free := st.Bavail * uint64(st.Bsize)
		total := st.Blocks * uint64(st.Bsize)
		ratio := float64(free) / float64(max(total, 1))
		switch {
		case free < doctorMinFreeBytes:
			add("FAIL", "disk", "%s %s: only %s free of %s (under %s): see docs/operators.md, When the disk fills up", d.name, d.path, human(free), human(total), human(doctorMinFreeBytes))
		case ratio < doctorWarnFreeRatio:
			add("warn", "disk", "%s %s: %s free of %s (%.0f%%)", d.name, d.path, human(free), human(total), ratio*100)
		default:
			add("ok", "disk", "%s %s: %s free of %s (%.0f%%)", d.name, d.path, human(free), human(total), ratio*100)
		}
	}
}

// doctorKey checks that the signing key is there, readable, parses, and
// is not readable by others.
func doctorKey(cfg config.Config, add func(status, name, format string, a ...any)) {
	path := filepath.Join(cfg.DataDir, "signing.key")
	st, err := os.Stat(path)
	if err != nil {
		add("FAIL", "signing key", "%v (the server creates it on first start; restore it from a backup if it was lost: other servers pin it)", err)
		return
	}
	// The file exists, so this only reads it.
	key, err := pdu.LoadOrCreateKey(path, cfg.ServerName)
	if err != nil {
		add("FAIL", "signing key", "%v", err)
		return
	}
	if st.Mode().Perm()&0o077 != 0 {
		add("warn", "signing key", "%s (%s) is readable by others: chmod 600 it", path, key.KeyID)
		return
	}
	add("ok", "signing key", "%s (%s), mode %v", path, key.KeyID, st.Mode().Perm())
}

// doctorPublicURL fetches /_matrix/client/versions at the public base URL:
// what clients do first.
func doctorPublicURL(ctx context.Context, cfg config.Config, add func(status, name, format string, a ...any)) {
	if cfg.PublicBaseURLIsDefault() {
		add("skip", "public url", "public_base_url is not set (it defaults to %s); set it to the URL clients use to check it", cfg.PublicBaseURL)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, doctorPublicTimeout)
	defer cancel()
	u := strings.TrimSuffix(cfg.PublicBaseURL, "/") + "/_matrix/client/versions"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		add("FAIL", "public url", "%v", err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		add("FAIL", "public url", "%s: %v", u, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || !gjson.GetBytes(body, "versions").IsArray() {
		add("FAIL", "public url", "%s answered %d without a versions list: is the proxy pointing at parley?", u, resp.StatusCode)
		return
	}
	add("ok", "public url", "%s answers (%d versions)", u, len(gjson.GetBytes(body, "versions").Array()))
}

// human writes a byte count with a binary unit.
func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
