package media

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/parley-im/parley/apierr"
)

// maxThumbDim bounds width and height so geometry arithmetic cannot overflow
// and the cache key space stays finite. Nothing is ever upscaled, so larger
// requests could not get a bigger result anyway.
const maxThumbDim = 1 << 16

// thumbSpec is a parsed thumbnail request.
type thumbSpec struct {
	width, height int
	crop          bool // method=crop; otherwise scale
	animated      bool // the client accepts an animated result
}

// parseThumbQuery validates width, height, method and animated. The spec
// wants 400 for non-integer or non-positive sizes; a missing size is
// M_MISSING_PARAM, any other bad value M_INVALID_PARAM. method defaults to
// scale, as in Synapse, since the spec marks it optional without a default.
func parseThumbQuery(q url.Values) (thumbSpec, error) {
	var s thumbSpec
	dims := [2]struct {
		name string
		dst  *int
	}{{"width", &s.width}, {"height", &s.height}}
	for _, d := range dims {
		raw := q.Get(d.name)
		if raw == "" {
			return thumbSpec{}, apierr.MissingParam("Missing " + d.name)
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxThumbDim {
			return thumbSpec{}, apierr.InvalidParam(fmt.Sprintf("%s must be an integer from 1 to %d", d.name, maxThumbDim))
		}
		*d.dst = n
	}
	switch q.Get("method") {
	case "", "scale":
	case "crop":
		s.crop = true
	default:
		return thumbSpec{}, apierr.InvalidParam("method must be crop or scale")
	}
	switch q.Get("animated") {
	case "", "false":
	case "true":
		s.animated = true
	default:
		return thumbSpec{}, apierr.InvalidParam("animated must be true or false")
	}
	return s, nil
}

// cacheName identifies the thumbnail for spec within the content's
// thumbnail directory. It is derived from the request, not the source, so a
// repeat request is served from disk without opening the original.
func (s thumbSpec) cacheName(sha string) string {
	method := "scale"
	if s.crop {
		method = "crop"
	}
	anim := ""
	if s.animated {
		anim = "-anim"
	}
	return fmt.Sprintf("%s-%dx%d-%s%s", sha, s.width, s.height, method, anim)
}

// thumbPlan is what to produce from a source of a given size.
type thumbPlan struct {
	original   bool            // the source already fits: send it unchanged
	src        image.Rectangle // region of the source to use, origin at (0,0)
	outW, outH int
}

// planThumb applies the spec's thumbnail rules. scale fits the image within
// width×height keeping its aspect ratio; crop fills width×height exactly
// from a centred region. Nothing is ever upscaled: a source that already
// fits within the request is returned as is (the spec asks for the
// original then), and a crop region smaller than the request is returned at
// its own size.
func planThumb(ow, oh int, s thumbSpec) thumbPlan {
	full := image.Rect(0, 0, ow, oh)
	if ow <= s.width && oh <= s.height {
		return thumbPlan{original: true, src: full, outW: ow, outH: oh}
	}
	w, h := int64(s.width), int64(s.height)
	W, H := int64(ow), int64(oh)
	if !s.crop {
		p := thumbPlan{src: full}
		if w*H <= h*W { // width is the binding side
			p.outW, p.outH = s.width, int(max(1, (H*w+W/2)/W))
		} else {
			p.outW, p.outH = int(max(1, (W*h+H/2)/H)), s.height
		}
		return p
	}
	// Largest centred region with the requested aspect ratio.
	rw, rh := W, H
	if W*h > H*w { // source is wider than requested
		rw = min(W, max(1, (H*w+h/2)/h))
	} else {
		rh = min(H, max(1, (W*h+w/2)/w))
	}
	x0, y0 := (W-rw)/2, (H-rh)/2
	return thumbPlan{
		src:  image.Rect(int(x0), int(y0), int(x0+rw), int(y0+rh)),
		outW: int(min(w, rw)),
		outH: int(min(h, rh)),
	}
}

// handleThumbnail answers GET .../thumbnail/{serverName}/{mediaId}.
//
// The request is answered from the size bucket that covers it (bucketFor),
// generated with every other bucket from one decode, in the decode queue.
// Content that cannot be thumbnailed (not PNG, JPEG or GIF, or corrupt) is
// 400 M_UNKNOWN, the response the spec documents for "the server cannot
// thumbnail the content". An image over a ThumbnailLimits cap (pixels,
// memory, JPEG scans, deadline) is 413 M_TOO_LARGE, the spec's "too large
// for the server to thumbnail": no thumbnail rather than the original,
// since a client would then decode the bomb itself. A full queue is 429
// M_LIMIT_EXCEEDED with retry_after_ms and Retry-After.
func (m *Repo) handleThumbnail(w http.ResponseWriter, r *http.Request, userID string) {
	spec, err := parseThumbQuery(r.URL.Query())
	if err != nil {
		m.fail(w, r, err)
		return
	}
	md, err := m.lookup(r, userID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	bucket := bucketFor(spec)
	cachePath := m.store.thumbPath(md.SHA256, bucketName(md.SHA256, bucket))
	// An animated request may be answered with the original GIF, which
	// only the source's header can tell; the others never need the source.
	if !spec.animated && m.serveCachedThumb(w, r, cachePath) {
		return
	}
	if err := m.readRefusal(md.SHA256); err != nil {
		m.fail(w, r, err)
		return
	}

	src, err := os.Open(m.store.contentPath(md.SHA256))
	if err != nil {
		m.fail(w, r, fmt.Errorf("opening content of %s: %w", md.MediaID, err))
		return
	}
	defer src.Close()
	format, cfg, err := probeImage(src, m.thumbLimits)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	plan := planThumb(cfg.Width, cfg.Height, bucket)
	// A GIF may be animated; unless the client accepts that, even a small
	// one is re-encoded as its first frame.
	if plan.original && (format != formatGIF || spec.animated) {
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			m.fail(w, r, fmt.Errorf("rewinding %s: %w", md.MediaID, err))
			return
		}
		setThumbHeaders(w, format)
		m.serveContent(w, r, md.SHA256, src)
		return
	}
	if spec.animated && m.serveCachedThumb(w, r, cachePath) {
		return
	}

	err = m.decodes.do(r.Context(), md.SHA256, int64(cfg.Width)*int64(cfg.Height), func(ctx context.Context) error {
		return m.generateBuckets(ctx, md.SHA256, format, cfg)
	})
	if err != nil {
		m.fail(w, r, thumbError(err))
		return
	}
	if !m.serveCachedThumb(w, r, cachePath) {
		// Someone removed part of the cache: forget that it was made, so
		// the next request makes it again.
		_ = os.Remove(m.store.thumbPath(md.SHA256, doneName(md.SHA256)))
		m.fail(w, r, fmt.Errorf("thumbnail %s missing after generation", cachePath))
	}
}

// serveCachedThumb sends a previously generated thumbnail, reporting false
// when there is none (or it cannot be read) so the caller regenerates it.
func (m *Repo) serveCachedThumb(w http.ResponseWriter, r *http.Request, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.log.WarnContext(r.Context(), "media: unreadable cached thumbnail", "path", path, "err", err)
		}
		return false
	}
	defer f.Close()
	var magic [8]byte
	n, _ := f.ReadAt(magic[:], 0)
	format := sniffFormat(magic[:n])
	if format == formatUnknown {
		return false
	}
	setThumbHeaders(w, format)
	m.serveContent(w, r, filepath.Base(path), f)
	return true
}

// setThumbHeaders sets the type and the disposition, which the spec requires
// to be inline for thumbnails.
func setThumbHeaders(w http.ResponseWriter, f imageFormat) {
	hd := w.Header()
	hd.Set("Content-Type", f.contentType())
	hd.Set("Content-Disposition", contentDisposition("inline", "thumbnail."+f.ext()))
}
