package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/federation/transport"
	"github.com/parley-im/parley/storage"
)

// A backup directory holds:
//
//	backup.json     the manifest (manifestFile): what, when, which schema
//	parley.db       the SQLite database, a consistent snapshot (SQLite only)
//	signing.key     the server's signing key, and the federation
//	                self-signed pair when the server made one
//	media/          the media store (content, records and thumbnails)
//
// The database is copied first and the media after it. Media files are
// written once and renamed into place, so every file the snapshot refers
// to is already complete when it is copied; files uploaded during the
// backup may come along unreferenced, which is harmless.

const manifestFile = "backup.json"

// manifest describes a backup; restore reads it.
type manifest struct {
	Format        int       `json:"format"` // 1
	ParleyVersion string    `json:"parley_version"`
	Engine        string    `json:"engine"` // sqlite or postgresql
	SchemaVersion int       `json:"schema_version,omitempty"`
	ServerName    string    `json:"server_name"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	Files         []string  `json:"files"`       // top-level files besides media/ and the manifest
	MediaFiles    int       `json:"media_files"` // files under media/
	MediaBytes    int64     `json:"media_bytes"`
}

// keyFiles are the data-dir files that hold keys: copied when present.
func keyFiles() []string {
	return []string{"signing.key", transport.SelfSignedCert, transport.SelfSignedKey}
}

const pgBackupNote = "the database is PostgreSQL: back it up with pg_dump or a base backup (docs/operators.md, Backups); this backup holds the keys and media only"

func backup(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("backup: DIR comes first: parley backup DIR [--config FILE]")
	}
	dir := args[0]
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if err := requireEmptyDir(dir); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m := manifest{Format: 1, ParleyVersion: version, ServerName: cfg.ServerName, Started: time.Now().UTC(), Engine: "sqlite"}
	if cfg.IsPostgres() {
		m.Engine = "postgresql"
		fmt.Fprintln(stdout, "database: skipped;", pgBackupNote)
	} else {
		fmt.Fprintf(stdout, "database: copying %s\n", cfg.SQLitePath())
		v, err := storage.BackupSQLite(ctx, cfg.SQLitePath(), filepath.Join(dir, "parley.db"))
		if err != nil {
			return err
		}
		m.SchemaVersion = v
		var size int64
		if st, err := os.Stat(filepath.Join(dir, "parley.db")); err == nil {
			size = st.Size()
		}
		fmt.Fprintf(stdout, "database: done, schema version %d, %d bytes\n", v, size)
	}
	for _, name := range keyFiles() {
		src := filepath.Join(cfg.DataDir, name)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := copyFile(src, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		m.Files = append(m.Files, name)
		fmt.Fprintf(stdout, "keys: copied %s\n", name)
	}
	if len(m.Files) == 0 {
		fmt.Fprintf(stdout, "keys: none in %s (the server has not started there yet?)\n", cfg.DataDir)
	}
	n, size, err := copyTree(ctx, filepath.Join(cfg.DataDir, "media"), filepath.Join(dir, "media"), stdout)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m.MediaFiles, m.MediaBytes = n, size
	fmt.Fprintf(stdout, "media: done, %d files, %d bytes\n", n, size)
	m.Finished = time.Now().UTC()
	body, _ := json.MarshalIndent(m, "", "  ")
	if err := writeSynced(filepath.Join(dir, manifestFile), append(body, '\n')); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup complete: %s (%s)\n", dir, m.Finished.Sub(m.Started).Round(time.Millisecond))
	return nil
}

func restore(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("restore: DIR comes first: parley restore DIR [--force] [--config FILE]")
	}
	dir := args[0]
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	force := fs.Bool("force", false, "replace the database, keys and media of a data dir that is not empty")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return fmt.Errorf("restore: %s is not a complete parley backup: %w", dir, err)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil || m.Format != 1 {
		return fmt.Errorf("restore: %s: unreadable manifest (format %d): %v", manifestFile, m.Format, err)
	}
	engine := "sqlite"
	if cfg.IsPostgres() {
		engine = "postgresql"
	}
	if m.Engine != engine {
		return fmt.Errorf("restore: the backup is of a %s server, the configuration names %s", m.Engine, engine)
	}
	if m.ServerName != cfg.ServerName {
		return fmt.Errorf("restore: the backup is of server %q, the configuration names %q", m.ServerName, cfg.ServerName)
	}
	if known := storage.KnownSchemaVersion(); m.SchemaVersion > known {
		return fmt.Errorf("restore: the backup is at schema version %d, this parley knows versions up to %d: restore it with the parley that made it", m.SchemaVersion, known)
	}
	if refuseIfServing(ctx, cfg, "") != nil {
		return fmt.Errorf("restore: a server answers at %s: stop it first", cfg.Listen)
	}
	if err := requireEmptyDir(cfg.DataDir); err != nil {
		if !*force {
			return fmt.Errorf("restore: %w; pass --force to replace its database, keys and media", err)
		}
		aside, err := moveAside(cfg)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		fmt.Fprintf(stdout, "data dir %s is not empty (--force): moved its database, keys and media to %s; delete that once the restored server runs\n", cfg.DataDir, aside)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if m.Engine == "sqlite" {
		fmt.Fprintf(stdout, "database: restoring %s\n", cfg.SQLitePath())
		tmp := cfg.SQLitePath() + ".restoring"
		if err := copyFile(filepath.Join(dir, "parley.db"), tmp); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if err := os.Rename(tmp, cfg.SQLitePath()); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	} else {
		fmt.Fprintln(stdout, "database: skipped; the database is PostgreSQL: restore it with pg_restore or from a base backup first (docs/operators.md, Backups)")
	}
	for _, name := range m.Files {
		if name != filepath.Base(name) || name == manifestFile || name == "parley.db" {
			return fmt.Errorf("restore: the manifest names a bad file %q", name)
		}
		if err := copyFile(filepath.Join(dir, name), filepath.Join(cfg.DataDir, name)); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		fmt.Fprintf(stdout, "keys: restored %s\n", name)
	}
	n, size, err := copyTree(ctx, filepath.Join(dir, "media"), filepath.Join(cfg.DataDir, "media"), stdout)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "media: done, %d files, %d bytes\n", n, size)
	if err := syncDir(cfg.DataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// A new epoch: clients' sync tokens may point past what the restored
	// store holds, and must lead to a fresh initial sync, not a silent
	// step backwards. Opening the store also migrates an older backup.
	s, err := storage.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath())
	if err != nil {
		return fmt.Errorf("restore: open the restored store: %w", err)
	}
	defer s.Close()
	epoch, err := s.RenewEpoch(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "store epoch renewed: %s (clients' older sync tokens get a fresh initial sync)\n", epoch)
	fmt.Fprintf(stdout, "restore complete from %s (taken %s)\n", dir, m.Started.Format(time.RFC3339))
	return nil
}

// requireEmptyDir fails when dir exists and holds anything.
func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// moveAside moves what a restore replaces (the SQLite files, the keys and
// the media store) into a new directory replaced-<time> inside the data
// dir, and returns its path. Renames, not deletes: a restore that goes
// wrong, or the wrong backup, loses nothing, and it needs no extra space.
func moveAside(cfg config.Config) (string, error) {
	aside := filepath.Join(cfg.DataDir, "replaced-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(aside, 0o700); err != nil {
		return "", err
	}
	var names []string
	if p := cfg.SQLitePath(); p != "" {
		names = append(names, p, p+"-wal", p+"-shm", p+"-journal")
	}
	for _, k := range keyFiles() {
		names = append(names, filepath.Join(cfg.DataDir, k))
	}
	names = append(names, filepath.Join(cfg.DataDir, "media"))
	for _, n := range names {
		err := os.Rename(n, filepath.Join(aside, filepath.Base(n)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return aside, syncDir(cfg.DataDir)
}

// copyTree copies the regular files under src to dst, keeping modes and
// leaving out partial files (the media store's tmp/ and .tmp-* files). It
// prints a progress line every 1,000 files. A missing src copies nothing.
func copyTree(ctx context.Context, src, dst string, stdout io.Writer) (files int, bytes int64, err error) {
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".tmp-") || strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
			return nil
		}
		if err := copyFile(path, filepath.Join(dst, rel)); err != nil {
			return err
		}
		st, err := d.Info()
		if err == nil {
			bytes += st.Size()
		}
		files++
		if files%1000 == 0 {
			fmt.Fprintf(stdout, "media: %d files, %d bytes so far\n", files, bytes)
		}
		return nil
	})
	return files, bytes, err
}

// copyFile copies src to dst (created with src's permission bits) and
// fsyncs it, so a finished backup or restore survives a crash.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return out.Close()
}

func writeSynced(path string, body []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
