package media

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/parley-im/parley/clientapi/apierr"
	"golang.org/x/image/draw"
)

// maxThumbPixels refuses decompression bombs: a few KB of PNG can claim
// gigapixels, and decoding allocates width×height×(4..8) bytes up front.
// 40 MP is about 160 MB as RGBA (320 MB for 16-bit PNG), per running job.
const maxThumbPixels = 40_000_000

// jpegQuality balances thumbnail size against visible artefacts.
const jpegQuality = 85

// imageFormat is a format we can thumbnail. The decoders are called
// directly, not through image.Decode, so that decoders other packages
// register globally (webp, bmp, ...) never widen what we accept here.
type imageFormat int

const (
	formatUnknown imageFormat = iota
	formatPNG
	formatJPEG
	formatGIF
)

func (f imageFormat) contentType() string {
	switch f {
	case formatPNG:
		return "image/png"
	case formatJPEG:
		return "image/jpeg"
	case formatGIF:
		return "image/gif"
	}
	return "application/octet-stream"
}

func (f imageFormat) ext() string {
	switch f {
	case formatPNG:
		return "png"
	case formatJPEG:
		return "jpg"
	case formatGIF:
		return "gif"
	}
	return "bin"
}

// outputFormat is what a generated thumbnail of f is encoded as: JPEG stays
// JPEG (photos), PNG and GIF become PNG (keeps transparency and sharp edges).
func outputFormat(f imageFormat) imageFormat {
	if f == formatJPEG {
		return formatJPEG
	}
	return formatPNG
}

// sniffFormat recognises a format from its magic bytes. The stored
// Content-Type is the uploader's claim and is not trusted for decoding.
func sniffFormat(b []byte) imageFormat {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return formatJPEG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return formatGIF
	}
	return formatUnknown
}

func cannotThumbnail() *apierr.Error {
	return apierr.New(http.StatusBadRequest, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")
}

// probeImage reads only the header of src to learn its format and size, and
// refuses what we will not decode before any pixel memory is allocated.
func probeImage(src io.ReaderAt) (imageFormat, image.Config, error) {
	var magic [8]byte
	n, _ := src.ReadAt(magic[:], 0)
	format := sniffFormat(magic[:n])
	if format == formatUnknown {
		return 0, image.Config{}, cannotThumbnail()
	}
	cfg, err := decodeConfig(format, io.NewSectionReader(src, 0, 1<<62))
	if err != nil || cfg.Width < 1 || cfg.Height < 1 {
		return 0, image.Config{}, cannotThumbnail()
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxThumbPixels {
		return 0, image.Config{}, apierr.TooLarge("Content is too large to thumbnail")
	}
	return format, cfg, nil
}

func decodeConfig(f imageFormat, r io.Reader) (image.Config, error) {
	br := bufio.NewReader(r)
	switch f {
	case formatPNG:
		return png.DecodeConfig(br)
	case formatJPEG:
		return jpeg.DecodeConfig(br)
	case formatGIF:
		return gif.DecodeConfig(br)
	}
	return image.Config{}, fmt.Errorf("no decoder for format %d", f)
}

// decodeImage decodes the whole image (a GIF's first frame only).
func decodeImage(f imageFormat, r io.Reader) (image.Image, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	switch f {
	case formatPNG:
		return png.Decode(br)
	case formatJPEG:
		return jpeg.Decode(br)
	case formatGIF:
		return gif.Decode(br)
	}
	return nil, fmt.Errorf("no decoder for format %d", f)
}

// generateThumb decodes src, resamples it per plan, encodes the result and
// stores it at cachePath. At most thumbnailConcurrency run at once; a
// request whose client has gone stops waiting (and stops decoding).
func (m *Repo) generateThumb(ctx context.Context, src io.ReaderAt, format imageFormat, cfg image.Config, plan thumbPlan, cachePath string) ([]byte, error) {
	select {
	case m.thumbSem <- struct{}{}:
		defer func() { <-m.thumbSem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a thumbnail slot: %w", ctx.Err())
	}
	// Requests for the same thumbnail queue up behind each other; only the
	// first should pay for generating it.
	if b, err := os.ReadFile(cachePath); err == nil && sniffFormat(b) != formatUnknown {
		return b, nil
	}

	img, err := decodeImage(format, ctxReader{ctx, io.NewSectionReader(src, 0, 1<<62)})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("decoding: %w", ctx.Err())
		}
		return nil, cannotThumbnail()
	}
	img = onCanvas(img, cfg)

	sr := plan.src.Add(img.Bounds().Min)
	dst := image.NewRGBA(image.Rect(0, 0, plan.outW, plan.outH))
	if sr.Dx() == plan.outW && sr.Dy() == plan.outH {
		draw.Draw(dst, dst.Bounds(), img, sr.Min, draw.Src) // crop only
	} else {
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resampling: %w", err)
	}

	var buf bytes.Buffer
	switch outputFormat(format) {
	case formatJPEG:
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: jpegQuality})
	default:
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding thumbnail: %w", err)
	}
	// The cache can always be rebuilt, so it is written atomically (never
	// half a file) but without fsync.
	if err := writeFileAtomic(cachePath, buf.Bytes(), false); err != nil {
		return nil, fmt.Errorf("caching thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

// onCanvas places a GIF frame that covers only part of the logical screen
// onto a transparent canvas of the screen's size, which is how viewers show
// it and what the plan was computed for.
func onCanvas(img image.Image, cfg image.Config) image.Image {
	b := img.Bounds()
	if b.Min == (image.Point{}) && b.Dx() == cfg.Width && b.Dy() == cfg.Height {
		return img
	}
	canvas := image.NewRGBA(image.Rect(0, 0, cfg.Width, cfg.Height))
	draw.Draw(canvas, b, img, b.Min, draw.Src)
	return canvas
}

// thumbPath places cached thumbnails in the same two-level fan-out as content.
func (s *store) thumbPath(sha, name string) string {
	return filepath.Join(s.thumbRoot(), sha[0:2], sha[2:4], name)
}
