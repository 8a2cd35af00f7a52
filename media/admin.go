package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/parley-im/parley/apierr"
)

// Operator actions on stored media (issue 16): list a user's uploads,
// delete items, quarantine, and per-user storage quotas.
//
// Metadata lives in one file per media ID and there is no index by
// uploader, so listing and bulk deletion read every record: their cost
// grows with the number of media items (docs/reliability.md). A quota
// needs every user's usage, so with a quota set New reads every record
// once and the repository keeps the sums in memory.

// ErrNotFound: no such media item.
var ErrNotFound = errors.New("media: not found")

// Info is one stored item as operators see it.
type Info struct {
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	UploadName  string `json:"upload_name,omitempty"`
	Size        int64  `json:"size"`
	Uploader    string `json:"uploader"`
	CreatedTS   int64  `json:"created_ts"`
	Quarantined bool   `json:"quarantined"`
}

func infoOf(md *metadata) Info {
	return Info{MediaID: md.MediaID, ContentType: md.ContentType, UploadName: md.UploadName, Size: md.Size,
		Uploader: md.Uploader, CreatedTS: md.CreatedTS, Quarantined: md.Quarantined}
}

// usage sums each uploader's stored bytes, for quotas. Guarded by mu.
type usage struct {
	mu    sync.Mutex
	bytes map[string]int64
}

func (u *usage) add(user string, n int64) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bytes[user] += n
	if u.bytes[user] <= 0 {
		delete(u.bytes, user)
	}
}

func (u *usage) of(user string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bytes[user]
}

// eachMeta calls fn with every readable metadata record. Unreadable
// records are skipped: one corrupt file must not block an operator.
func (s *store) eachMeta(fn func(md *metadata) error) error {
	entries, err := os.ReadDir(s.metaRoot())
	if err != nil {
		return fmt.Errorf("listing media records: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !validMediaID(id) {
			continue
		}
		md, err := s.readMeta(id)
		if err != nil {
			continue
		}
		if err := fn(md); err != nil {
			return err
		}
	}
	return nil
}

// loadUsage sums every uploader's bytes.
func (s *store) loadUsage() (*usage, error) {
	u := &usage{bytes: map[string]int64{}}
	err := s.eachMeta(func(md *metadata) error {
		u.bytes[md.Uploader] += md.Size
		return nil
	})
	return u, err
}

// quotaExceeded is the error an upload over the uploader's quota gets:
// 403, as the spec's upload endpoint gives for a user who reached a quota
// for uploaded content, with M_RESOURCE_LIMIT_EXCEEDED's admin_contact.
func (m *Repo) quotaExceeded() *apierr.Error {
	e := apierr.New(403, "M_RESOURCE_LIMIT_EXCEEDED", fmt.Sprintf("Your media storage quota of %d bytes is used up", m.quota))
	e.Extra = map[string]any{"admin_contact": m.adminContact}
	return e
}

// UserMedia lists userID's uploads, newest first.
func (m *Repo) UserMedia(userID string) ([]Info, error) {
	var out []Info
	err := m.store.eachMeta(func(md *metadata) error {
		if md.Uploader == userID {
			out = append(out, infoOf(md))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedTS != out[j].CreatedTS {
			return out[i].CreatedTS > out[j].CreatedTS
		}
		return out[i].MediaID < out[j].MediaID
	})
	return out, err
}

// Item returns one item's record.
func (m *Repo) Item(mediaID string) (Info, error) {
	if !validMediaID(mediaID) {
		return Info{}, ErrNotFound
	}
	md, err := m.store.readMeta(mediaID)
	if errors.Is(err, errNoMedia) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return infoOf(md), nil
}

// Quarantine makes an item undownloadable by anyone (404, as if it did
// not exist, thumbnails too), or lifts that. The bytes stay.
func (m *Repo) Quarantine(mediaID string, on bool) error {
	m.contentMu.Lock()
	defer m.contentMu.Unlock()
	if !validMediaID(mediaID) {
		return ErrNotFound
	}
	md, err := m.store.readMeta(mediaID)
	if errors.Is(err, errNoMedia) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	md.Quarantined = on
	return m.store.writeMeta(md)
}

// Filter selects items for Purge; zero fields select everything.
type Filter struct {
	Uploader string
	// BeforeTS selects items uploaded before this time (ms).
	BeforeTS int64
	// LargerThan selects items of more bytes.
	LargerThan int64
	// MediaID selects one item.
	MediaID string
}

func (f Filter) match(md *metadata) bool {
	return (f.Uploader == "" || md.Uploader == f.Uploader) && (f.BeforeTS == 0 || md.CreatedTS < f.BeforeTS) &&
		(f.LargerThan == 0 || md.Size > f.LargerThan) && (f.MediaID == "" || md.MediaID == f.MediaID)
}

// PurgeResult says what a purge deleted.
type PurgeResult struct {
	Deleted []string `json:"deleted_media"`
	Bytes   int64    `json:"freed_bytes"`
}

// Purge deletes the items f selects: their records, then every stored
// file no remaining record points at (identical uploads share one file),
// and its thumbnails. Uploads wait while it runs, so none can start
// sharing a file being deleted. progress, if not nil, is told after each
// item.
func (m *Repo) Purge(f Filter, progress func(done int)) (PurgeResult, error) {
	res := PurgeResult{Deleted: []string{}}
	if f.MediaID != "" && !validMediaID(f.MediaID) {
		return res, ErrNotFound
	}
	m.contentMu.Lock()
	defer m.contentMu.Unlock()
	doomed := map[string]int64{} // sha -> size
	kept := map[string]bool{}
	err := m.store.eachMeta(func(md *metadata) error {
		if !f.match(md) {
			kept[md.SHA256] = true
			return nil
		}
		if err := os.Remove(m.store.metaPath(md.MediaID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting record of %s: %w", md.MediaID, err)
		}
		res.Deleted = append(res.Deleted, md.MediaID)
		doomed[md.SHA256] = md.Size
		m.usage.add(md.Uploader, -md.Size)
		if progress != nil {
			progress(len(res.Deleted))
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if f.MediaID != "" && len(res.Deleted) == 0 {
		return res, ErrNotFound
	}
	if len(res.Deleted) > 0 {
		if err := syncDir(m.store.metaRoot()); err != nil {
			return res, err
		}
	}
	for sha, size := range doomed {
		if kept[sha] {
			continue
		}
		if err := os.Remove(m.store.contentPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("deleting content %s: %w", sha, err)
		}
		res.Bytes += size
		m.removeThumbnails(sha)
	}
	return res, nil
}

// removeThumbnails drops the cached thumbnails of content sha; they are a
// cache, so failures only cost disk.
func (m *Repo) removeThumbnails(sha string) {
	dir := filepath.Dir(m.store.thumbPath(sha, "x"))
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), sha) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Usage returns userID's stored bytes as the quota counts them, or -1
// when no quota is set (usage is then not tracked).
func (m *Repo) Usage(userID string) int64 {
	if m.usage == nil {
		return -1
	}
	return m.usage.of(userID)
}
