package media

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// errNoMedia means no metadata exists for a media ID. Handlers turn it into
// 404 M_NOT_FOUND.
var errNoMedia = errors.New("media: no such media")

// metadata is the JSON record kept per media ID. Several IDs may point at the
// same sha256 (dedup), each with its own name, type and uploader.
type metadata struct {
	MediaID     string `json:"media_id"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
	UploadName  string `json:"upload_name"`
	Size        int64  `json:"size"`
	Uploader    string `json:"uploader"`
	// Origin is the server a fetched remote item came from; "" for local
	// uploads.
	Origin    string `json:"origin,omitempty"`
	CreatedTS int64  `json:"created_ts"` // milliseconds since the Unix epoch
}

// store knows the on-disk layout. It never interprets HTTP.
type store struct {
	root string
}

func (s *store) contentRoot() string { return filepath.Join(s.root, "content") }
func (s *store) metaRoot() string    { return filepath.Join(s.root, "meta") }
func (s *store) thumbRoot() string   { return filepath.Join(s.root, "thumbnails") }

// tmpRoot is where partial files are written; it sits under root so renames
// into place stay on one filesystem and are atomic.
func (s *store) tmpRoot() string { return filepath.Join(s.root, "tmp") }

// contentPath is the content-addressed location of the bytes with hash sha.
// sha must already have passed validSHA256: it is a path component.
func (s *store) contentPath(sha string) string {
	return filepath.Join(s.contentRoot(), sha[0:2], sha[2:4], sha)
}

func (s *store) metaPath(mediaID string) string {
	return filepath.Join(s.metaRoot(), mediaID+".json")
}

// readMeta loads the record for mediaID, which must have passed validMediaID.
func (s *store) readMeta(mediaID string) (*metadata, error) {
	raw, err := os.ReadFile(s.metaPath(mediaID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoMedia
	}
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", mediaID, err)
	}
	var md metadata
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("decoding metadata of %s: %w", mediaID, err)
	}
	// The hash becomes a path; a corrupt record must not walk the tree.
	if !validSHA256(md.SHA256) {
		return nil, fmt.Errorf("metadata of %s has a malformed sha256 %q", mediaID, md.SHA256)
	}
	return &md, nil
}

// writeMeta stores md durably: a reader sees either no record or a whole one.
func (s *store) writeMeta(md *metadata) error {
	raw, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("encoding metadata of %s: %w", md.MediaID, err)
	}
	return writeFileAtomic(s.metaPath(md.MediaID), raw, true)
}

// writeFileAtomic writes data to a temp file beside path and renames it into
// place, so a crash never leaves a truncated file at path. With durable, the
// file and its directory are fsynced; caches that can be rebuilt skip that.
func writeFileAtomic(path string, data []byte, durable bool) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temp file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	if durable {
		return syncDir(dir)
	}
	return nil
}

// syncDir makes a rename inside dir durable across a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

const (
	mediaIDLen      = 24
	mediaIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// newMediaID returns 24 uniformly random characters from [A-Za-z0-9]
// (about 143 bits), so IDs are unguessable and collisions are not a concern.
func newMediaID() string {
	out := make([]byte, 0, mediaIDLen)
	var buf [32]byte
	for len(out) < mediaIDLen {
		_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails (Go 1.24+).
		for _, b := range buf {
			// 248 = 4*62: rejecting the top 8 byte values keeps every
			// character equally likely.
			if b < 248 && len(out) < mediaIDLen {
				out = append(out, mediaIDAlphabet[b%62])
			}
		}
	}
	return string(out)
}

// validMediaID applies the spec's rule for the media-id segment of an mxc
// URI: only A-Za-z0-9, '_' and '-'. IDs are also file names, so this is the
// guard against path traversal. IDs from other implementations may be
// longer than ours; 255 keeps them a legal file name.
func validMediaID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validSHA256 reports whether s is 64 lower-case hex digits.
func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
