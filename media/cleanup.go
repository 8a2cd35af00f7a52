package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// removePartials deletes what a killed process left half-written: every
// file in tmp/ (uploads still streaming when the process died) and the
// ".tmp-*" files writeFileAtomic leaves beside metadata records. It runs in
// New, before any request, so nothing it removes can belong to a live
// upload. Nothing acknowledged lives there: an upload is acknowledged only
// after its bytes were renamed out of tmp/ and its record written.
func (s *store) removePartials() (removed int, err error) {
	entries, err := os.ReadDir(s.tmpRoot())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("listing %s: %w", s.tmpRoot(), err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmpRoot(), e.Name())); err != nil {
			return removed, fmt.Errorf("removing partial upload %s: %w", e.Name(), err)
		}
		removed++
	}
	metas, err := os.ReadDir(s.metaRoot())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, fmt.Errorf("listing %s: %w", s.metaRoot(), err)
	}
	for _, e := range metas {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if err := os.Remove(filepath.Join(s.metaRoot(), e.Name())); err != nil {
			return removed, fmt.Errorf("removing partial record %s: %w", e.Name(), err)
		}
		removed++
	}
	return removed, nil
}
