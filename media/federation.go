package media

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
)

// ServerAccess is supplied by the homeserver: it decides whether server
// may fetch a local media item uploaded by uploader, and returns an
// *apierr.Error (404, so that existence does not leak) when not.
type ServerAccess func(ctx context.Context, server, mediaID, uploader string) error

// Origin returns the server the X-Matrix middleware authenticated.
type Origin func(r *http.Request) (server string, ok bool)

// serverReadKey marks a request context as a federation read by the
// server it holds, so lookup asks ServerAccess instead of Access.
type serverReadKey struct{}

// MountFederation registers the federation media routes on r, which must
// sit behind the X-Matrix check: GET /_matrix/federation/v1/media/download
// and /thumbnail, answered as multipart/mixed (a JSON metadata part, then
// the bytes) as the spec has it. Only local media is served.
func (m *Repo) MountFederation(r chi.Router, origin Origin, access ServerAccess) {
	m.serverAccess = access
	r.Get("/_matrix/federation/v1/media/download/{mediaId}", withMediaHeaders(m.fedHandler(origin, m.handleFedDownload)))
	r.Get("/_matrix/federation/v1/media/thumbnail/{mediaId}", withMediaHeaders(m.fedHandler(origin, m.handleFedThumbnail)))
}

// fedHandler checks the origin and marks the request as the origin's, with
// this server's name as the item's server.
func (m *Repo) fedHandler(origin Origin, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, ok := origin(r)
		if !ok || o == "" {
			apierr.Write(w, apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing or bad X-Matrix authorization"))
			return
		}
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			rctx.URLParams.Add("serverName", m.serverName)
		}
		h(w, r.WithContext(context.WithValue(r.Context(), serverReadKey{}, o)))
	}
}

// writeMultipart answers with the metadata part ({}) and the content part.
func writeMultipart(w http.ResponseWriter, contentType, disposition string, body io.Reader) error {
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	if _, err := io.WriteString(meta, "{}"); err != nil {
		return err
	}
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {contentType}, "Content-Disposition": {disposition}})
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, body); err != nil {
		return err
	}
	return mw.Close()
}

// handleFedDownload answers GET /_matrix/federation/v1/media/download/{mediaId}.
func (m *Repo) handleFedDownload(w http.ResponseWriter, r *http.Request) {
	md, err := m.lookup(r, "")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	f, err := os.Open(m.store.contentPath(md.SHA256))
	if err != nil {
		m.fail(w, r, fmt.Errorf("opening content of %s: %w", md.MediaID, err))
		return
	}
	defer f.Close()
	ct := servedContentType(md.ContentType)
	disposition := "attachment"
	if isInline(ct) {
		disposition = "inline"
	}
	if err := writeMultipart(w, ct, contentDisposition(disposition, md.UploadName), f); err != nil && r.Context().Err() == nil {
		m.log.WarnContext(r.Context(), "media: federation download cut short", "media_id", md.MediaID, "err", err)
	}
}

// handleFedThumbnail answers GET /_matrix/federation/v1/media/thumbnail/{mediaId}:
// the client route's thumbnail (same sizes, limits and errors), buffered
// and sent as the content part. Thumbnails are small; an image small
// enough to be its own thumbnail is at most the upload limit.
func (m *Repo) handleFedThumbnail(w http.ResponseWriter, r *http.Request) {
	rec := &bufferedResponse{header: http.Header{}}
	r.Header.Del("If-None-Match")
	r.Header.Del("Range")
	m.handleThumbnail(rec, r, "")
	if rec.status != 0 && rec.status != http.StatusOK {
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		return
	}
	if err := writeMultipart(w, rec.header.Get("Content-Type"), rec.header.Get("Content-Disposition"), &rec.body); err != nil && r.Context().Err() == nil {
		m.log.WarnContext(r.Context(), "media: federation thumbnail cut short", "err", err)
	}
}

// bufferedResponse keeps a handler's answer in memory.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// maxFederationMetadata bounds the JSON metadata part of an answer.
const maxFederationMetadata = 64 << 10

// ParseFederationMedia reads another server's answer to media/download
// (Content-Type header and body) up to its content part, and returns the
// content's type, its file name (from Content-Disposition; "" when none)
// and a reader of its bytes. A Location redirect is an error: following it
// would leave the guarded federation client.
func ParseFederationMedia(contentType string, body io.Reader) (partType, fileName string, content io.Reader, err error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return "", "", nil, fmt.Errorf("answer is not multipart/mixed (%q)", contentType)
	}
	mr := multipart.NewReader(body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("metadata part: %w", err)
	}
	if mt, _, err := mime.ParseMediaType(meta.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", "", nil, fmt.Errorf("metadata part is %q, not JSON", meta.Header.Get("Content-Type"))
	}
	if n, err := io.Copy(io.Discard, io.LimitReader(meta, maxFederationMetadata+1)); err != nil || n > maxFederationMetadata {
		return "", "", nil, fmt.Errorf("metadata part unreadable or over %d bytes", maxFederationMetadata)
	}
	part, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("content part: %w", err)
	}
	if part.Header.Get("Location") != "" {
		return "", "", nil, fmt.Errorf("redirects to another location are not followed")
	}
	if _, p, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
		fileName = p["filename"]
	}
	return part.Header.Get("Content-Type"), fileName, part, nil
}
