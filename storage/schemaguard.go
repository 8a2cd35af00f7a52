package storage

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrSchemaTooNew is wrapped by Open when the database was migrated by a
// newer Parley. Running older code on it could misread or overwrite data
// the newer schema holds, so the binary refuses to start instead.
var ErrSchemaTooNew = fmt.Errorf("storage: database schema is newer than this binary")

// KnownSchemaVersion is the highest schema version this binary's
// migrations reach.
func KnownSchemaVersion() int {
	files, _ := fs.Glob(schemaFS, "schema/*.sql") // the pattern is valid
	known := 0
	for _, name := range files {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if err == nil && v > known {
			known = v
		}
	}
	return known
}

// checkSchemaNotNewer refuses a database whose recorded schema version is
// above every migration this binary has.
func checkSchemaNotNewer(current int) error {
	if known := KnownSchemaVersion(); current > known {
		return fmt.Errorf("%w: the database is at schema version %d, this parley knows versions up to %d; "+
			"run the newer parley that upgraded it, or restore a backup taken before the upgrade (docs/operators.md, Upgrades)",
			ErrSchemaTooNew, current, known)
	}
	return nil
}

// SchemaVersion returns the database's recorded schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}
