package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-im/parley/apierr"
)

// errTooLarge means an upload body went past the limit while streaming.
var errTooLarge = errors.New("media: upload exceeds the size limit")

// handleUpload answers POST /_matrix/media/{v3,r0}/upload.
func (m *Repo) handleUpload(w http.ResponseWriter, r *http.Request, userID string) {
	// Refuse before reading a byte when the client announces too much: the
	// server then closes the connection instead of draining the body.
	if r.ContentLength > m.maxUpload {
		m.fail(w, r, tooLarge(m.maxUpload))
		return
	}
	md, err := m.upload(r.Context(), r.Body, userID,
		sanitizeContentType(r.Header.Get("Content-Type")),
		strings.ToValidUTF8(r.URL.Query().Get("filename"), "\uFFFD"))
	if errors.Is(err, errTooLarge) {
		// Close the connection rather than let net/http drain the rest of
		// a body we will never store before the client sees the answer.
		w.Header().Set("Connection", "close")
		m.fail(w, r, tooLarge(m.maxUpload))
		return
	}
	if err != nil {
		m.fail(w, r, fmt.Errorf("upload by %s: %w", userID, err))
		return
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{
		"content_uri": "mxc://" + m.serverName + "/" + md.MediaID,
	})
}

func tooLarge(limit int64) *apierr.Error {
	return apierr.TooLarge(fmt.Sprintf("Upload exceeds the limit of %d bytes", limit))
}

// upload stores body under a fresh media ID. The bytes land in their
// content-addressed place before the metadata is written, so a record never
// points at a missing file; a crash in between leaves at worst an orphan
// content file, never a dangling ID.
//
// The per-user upload limit is checked here, before a byte is read, so
// every route that uploads counts against it.
func (m *Repo) upload(ctx context.Context, body io.Reader, userID, contentType, name string) (*metadata, error) {
	if !m.exempt[userID] {
		if ok, retry := m.uploads.Allow(userID, time.Now()); !ok {
			return nil, apierr.LimitExceeded(retry.Milliseconds() + 1)
		}
	}
	m.contentMu.RLock()
	defer m.contentMu.RUnlock()
	limit := m.maxUpload
	if m.usage != nil && !m.exempt[userID] {
		left := m.quota - m.usage.of(userID)
		if left <= 0 {
			return nil, m.quotaExceeded()
		}
		limit = min(limit, left)
	}
	sha, size, err := m.store.putContent(ctx, body, limit)
	if errors.Is(err, errTooLarge) && limit < m.maxUpload {
		return nil, m.quotaExceeded()
	}
	if err != nil {
		return nil, err
	}
	md := &metadata{
		MediaID:     newMediaID(),
		SHA256:      sha,
		ContentType: contentType,
		UploadName:  name,
		Size:        size,
		Uploader:    userID,
		CreatedTS:   time.Now().UnixMilli(),
	}
	if err := m.store.writeMeta(md); err != nil {
		return nil, err
	}
	m.usage.add(userID, size)
	return md, nil
}

// putContent streams body into a temp file while hashing it, then moves the
// file to its content-addressed path. More than limit bytes yields
// errTooLarge and nothing is left on disk. When the content is already
// stored the temp file is dropped, so identical uploads share one file.
func (s *store) putContent(ctx context.Context, body io.Reader, limit int64) (sha string, size int64, err error) {
	if body == nil {
		body = http.NoBody
	}
	f, err := os.CreateTemp(s.tmpRoot(), "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("creating temp file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()

	h := sha256.New()
	// limit+1 lets us tell "exactly at the limit" from "over it" without
	// reading the rest of an oversized body.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, body}, limit+1))
	if err != nil {
		return "", 0, fmt.Errorf("receiving upload: %w", err)
	}
	if n > limit {
		return "", 0, errTooLarge
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return "", 0, fmt.Errorf("closing %s: %w", tmp, err)
	}

	sha = hex.EncodeToString(h.Sum(nil))
	dst := s.contentPath(sha)
	if _, statErr := os.Stat(dst); statErr == nil {
		// Dedup: the bytes are already stored. Reuse them.
		if err := os.Remove(tmp); err != nil {
			return "", 0, fmt.Errorf("dropping duplicate %s: %w", tmp, err)
		}
		return sha, n, nil
	} else if !errors.Is(statErr, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("checking %s: %w", dst, statErr)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", 0, fmt.Errorf("creating %s: %w", dir, err)
	}
	// Two concurrent identical uploads may both get here; the second rename
	// atomically replaces the first with identical bytes, which is harmless.
	if err := os.Rename(tmp, dst); err != nil {
		return "", 0, fmt.Errorf("moving upload into %s: %w", dst, err)
	}
	if err := syncDir(dir); err != nil {
		return "", 0, err
	}
	return sha, n, nil
}

// ctxReader stops a long copy or decode once the request is gone, instead of
// finishing work nobody will read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
