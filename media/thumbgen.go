package media

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"path/filepath"

	"github.com/parley-im/parley/apierr"
	"golang.org/x/image/draw"
)

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
// refuses what we will not decode (too many pixels, or too much memory for
// them) before any pixel memory is allocated.
func probeImage(src io.ReaderAt, lim ThumbnailLimits) (imageFormat, image.Config, error) {
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
	if int64(cfg.Width)*int64(cfg.Height) > lim.MaxPixels || decodeBytes(cfg) > lim.MaxDecodeBytes {
		return 0, image.Config{}, tooLargeToThumbnail()
	}
	return format, cfg, nil
}

func tooLargeToThumbnail() *apierr.Error {
	return apierr.TooLarge("Content is too large to thumbnail")
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

// decodeImage decodes the whole image (a GIF's first frame only). The
// buffer is small so that a reader checking a context (ctxReader) is asked
// often: a crafted file does much work per byte, and the decoder can only be
// stopped between reads.
func decodeImage(f imageFormat, r io.Reader) (image.Image, error) {
	br := bufio.NewReaderSize(r, 4<<10)
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
