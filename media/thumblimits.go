package media

import (
	"fmt"
	"image"
	"image/color"
	"time"
)

// ThumbnailLimits bound what generating thumbnails may cost, so that no
// image, however crafted, burns more than about a CPU-second or a few
// hundred MB, and a burst of them queues instead of starving message
// traffic. The zero value of each field means its default.
type ThumbnailLimits struct {
	// MaxPixels refuses sources with more pixels (width × height, read from
	// the header before decoding) with 413 M_TOO_LARGE. Zero means
	// 32,000,000, Synapse's max_image_pixels: every common camera photo
	// fits, and decoding costs about a second at most.
	MaxPixels int64
	// MaxDecodeBytes refuses sources whose decoded pixels (and, for a
	// progressive JPEG, its coefficient store) would need more memory. Zero
	// means 256 MiB: a 32 MP 8-bit image, or a 16 MP progressive photo.
	MaxDecodeBytes int64
	// MaxJPEGScans refuses a JPEG with more scans (SOS markers, counted
	// before decoding): Go's decoder passes over the whole image once per
	// scan. Zero means 32; encoders write 10 or so.
	MaxJPEGScans int
	// MaxJPEGScanPixels bounds scans × pixels, the decode cost of a
	// progressive JPEG, so that a large image gets fewer scans. Zero means
	// 400,000,000 (e.g. 12 scans at 32 MP, 32 at 12 MP).
	MaxJPEGScanPixels int64
	// Concurrency is how many images are decoded at once. Zero means 1: a
	// decode pins a core, and the rest must stay free for messages.
	Concurrency int
	// MaxPending is how many generations may wait for a decoder; more get
	// 429 M_LIMIT_EXCEEDED with a retry delay. Zero means 16.
	MaxPending int
	// Deadline bounds one generation once it runs; past it the request gets
	// 413 M_TOO_LARGE at once, and the decoder stops at its next read. It
	// is a safety net behind the caps, which keep a decode near a
	// CPU-second. Zero means 10 s.
	Deadline time.Duration
}

func (l ThumbnailLimits) withDefaults() ThumbnailLimits {
	setDef := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	setDef(&l.MaxPixels, 32_000_000)
	setDef(&l.MaxDecodeBytes, 256<<20)
	setDef(&l.MaxJPEGScanPixels, 400_000_000)
	if l.MaxJPEGScans <= 0 {
		l.MaxJPEGScans = 32
	}
	if l.Concurrency <= 0 {
		l.Concurrency = 1
	}
	if l.MaxPending <= 0 {
		l.MaxPending = 16
	}
	if l.Deadline <= 0 {
		l.Deadline = 10 * time.Second
	}
	return l
}

func (l ThumbnailLimits) validate() error {
	if l.MaxPixels < 0 || l.MaxDecodeBytes < 0 || l.MaxJPEGScans < 0 || l.MaxJPEGScanPixels < 0 ||
		l.Concurrency < 0 || l.MaxPending < 0 || l.Deadline < 0 {
		return fmt.Errorf("media: a thumbnail limit is negative (%+v)", l)
	}
	return nil
}

// maxScans is how many scans a JPEG of the given pixel count may have.
func (l ThumbnailLimits) maxScans(pixels int64) int {
	return int(min(int64(l.MaxJPEGScans), max(1, l.MaxJPEGScanPixels/max(1, pixels))))
}

// bytesPerPixel is what the decoder allocates per pixel for a colour model:
// the memory side of a decode, known from the header alone.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3 // 4:4:4 at worst
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8 // RGBA64, NRGBA64 and anything unknown
}

// decodeBytes estimates the memory a decode of cfg needs: the decoded
// pixels, plus an RGBA copy for the types the scaler has no fast path for.
func decodeBytes(cfg image.Config) int64 {
	bpp := bytesPerPixel(cfg.ColorModel)
	switch cfg.ColorModel {
	case color.GrayModel, color.YCbCrModel, color.RGBAModel, color.NRGBAModel:
	default:
		bpp += 4
	}
	return int64(cfg.Width) * int64(cfg.Height) * bpp
}
