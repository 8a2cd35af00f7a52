package media

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parley-im/parley/apierr"
)

// handleDownload answers GET .../download/{serverName}/{mediaId}[/{fileName}]
// on both the authenticated and the legacy paths.
func (m *Repo) handleDownload(w http.ResponseWriter, r *http.Request, userID string) {
	md, err := m.lookup(r, userID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	f, err := os.Open(m.store.contentPath(md.SHA256))
	if err != nil {
		// The metadata exists, so the bytes must too: this is a fault.
		m.fail(w, r, fmt.Errorf("opening content of %s: %w", md.MediaID, err))
		return
	}
	defer f.Close()

	name := md.UploadName
	if p, ok := pathParam(r, "fileName"); ok && p != "" {
		name = p
	}
	ct := servedContentType(md.ContentType)
	disposition := "attachment"
	if isInline(ct) {
		disposition = "inline"
	}
	hd := w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("Content-Disposition", contentDisposition(disposition, name))
	m.serveContent(w, r, md.SHA256, f)
}

// serveContent sends body with Content-Length, Range and If-None-Match
// support. etag must identify the bytes (a content hash or derived from one):
// media bytes never change, so If-None-Match revalidation is always exact.
func (m *Repo) serveContent(w http.ResponseWriter, r *http.Request, etag string, body io.ReadSeeker) {
	hd := w.Header()
	hd.Set("Cache-Control", cacheControl)
	hd.Set("ETag", `"`+etag+`"`)
	// A zero modtime omits Last-Modified; the ETag does that job.
	http.ServeContent(w, r, "", time.Time{}, body)
}

// lookup resolves the {serverName}/{mediaId} of a request to its metadata,
// or to the *apierr.Error the client should see, after asking the access
// hook whether userID may have it.
func (m *Repo) lookup(r *http.Request, userID string) (*metadata, error) {
	server, _ := pathParam(r, "serverName")
	id, _ := pathParam(r, "mediaId")
	if !validMediaID(id) {
		return nil, apierr.NotFound("Media not found")
	}
	if server != m.serverName {
		// Another server's item: fetched once and kept (remote.go). Who
		// may see it there was that server's decision; here any signed-in
		// user may.
		if !validServerName(server) {
			return nil, apierr.NotFound("Media not found")
		}
		return m.remoteLookup(r.Context(), userID, server, id)
	}
	md, err := m.store.readMeta(id)
	if errors.Is(err, errNoMedia) {
		return nil, apierr.NotFound("Media not found")
	}
	if server, ok := r.Context().Value(serverReadKey{}).(string); ok && err == nil {
		// Another server asks (federation.go).
		if m.serverAccess != nil {
			if err := m.serverAccess(r.Context(), server, md.MediaID, md.Uploader); err != nil {
				return nil, err
			}
		}
		return md, nil
	}
	if err == nil && m.access != nil {
		if err := m.access(r.Context(), userID, md.MediaID, md.Uploader); err != nil {
			return nil, err
		}
	}
	return md, err
}

// Uploader returns who uploaded a local media item, or an *apierr.Error
// 404 when there is no such item.
func (m *Repo) Uploader(mediaID string) (string, error) {
	if !validMediaID(mediaID) {
		return "", apierr.NotFound("Media not found")
	}
	md, err := m.store.readMeta(mediaID)
	if errors.Is(err, errNoMedia) {
		return "", apierr.NotFound("Media not found")
	}
	if err != nil {
		return "", err
	}
	return md.Uploader, nil
}

// pathParam returns a decoded chi path parameter. chi routes on the raw
// (escaped) path whenever the URL has one, e.g. for a file name containing
// %2F; then its parameters are still escaped and must be decoded here.
func pathParam(r *http.Request, key string) (string, bool) {
	v := chi.URLParam(r, key)
	if r.URL.RawPath == "" {
		return v, true
	}
	dec, err := url.PathUnescape(v)
	if err != nil {
		return "", false
	}
	return dec, true
}
