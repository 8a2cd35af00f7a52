package media

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/parley-im/parley/apierr"
	"golang.org/x/image/draw"
)

// thumbBuckets are the only thumbnails generated, Synapse's defaults: every
// request is served the smallest bucket at least as big as it asked for, so
// one decode produces them all and a client cycling through sizes costs
// nothing more. Ordered by size within each method.
var thumbBuckets = [...]thumbSpec{
	{width: 32, height: 32, crop: true},
	{width: 96, height: 96, crop: true},
	{width: 320, height: 240},
	{width: 640, height: 480},
	{width: 800, height: 600},
}

// bucketFor picks the bucket that answers s: the smallest of the same
// method that covers the request; for a crop bigger than the crop buckets,
// the smallest covering scale bucket (as Synapse does); otherwise the
// largest scale bucket. The spec lets the server return a different size
// than asked for, and clients scale what they get.
func bucketFor(s thumbSpec) thumbSpec {
	pick := func(crop bool) (thumbSpec, bool) {
		for _, b := range thumbBuckets {
			if b.crop == crop && b.width >= s.width && b.height >= s.height {
				return b, true
			}
		}
		return thumbSpec{}, false
	}
	b, ok := pick(s.crop)
	if !ok && s.crop {
		b, ok = pick(false)
	}
	if !ok {
		b = thumbBuckets[len(thumbBuckets)-1]
	}
	b.animated = s.animated
	return b
}

// bucketName names a bucket's file in the content's thumbnail directory.
// Animation is not part of it: generated thumbnails are always still.
func bucketName(sha string, b thumbSpec) string {
	b.animated = false
	return b.cacheName(sha)
}

// refusedName marks a source that failed or was refused, so that repeat
// requests answer at once instead of decoding it again. Its content is the
// HTTP status to answer.
func refusedName(sha string) string { return sha + "-refused" }

// doneName marks a source whose buckets were all made.
func doneName(sha string) string { return sha + "-done" }

// readRefusal returns the remembered refusal of a source, or nil.
func (m *Repo) readRefusal(sha string) error {
	raw, err := os.ReadFile(m.store.thumbPath(sha, refusedName(sha)))
	if err != nil {
		return nil
	}
	if st, _ := strconv.Atoi(string(raw)); st == 413 {
		return tooLargeToThumbnail()
	}
	return cannotThumbnail()
}

// refuse remembers that sha cannot be thumbnailed and returns err.
func (m *Repo) refuse(sha string, err *apierr.Error) error {
	if werr := writeFileAtomic(m.store.thumbPath(sha, refusedName(sha)), []byte(strconv.Itoa(err.Status)), false); werr != nil {
		m.log.Warn("media: cannot remember a thumbnail refusal", "sha256", sha, "err", werr)
	}
	return err
}

// generateBuckets decodes the source once and writes every bucket it needs
// (those the source does not already fit; a GIF's first frame always). It
// runs inside the decode queue; ctx ends at the deadline or when no request
// waits any more.
func (m *Repo) generateBuckets(ctx context.Context, sha string, format imageFormat, cfg image.Config) error {
	done := m.store.thumbPath(sha, doneName(sha))
	if _, err := os.Stat(done); err == nil {
		return nil // a job that finished just before this one made them
	}
	err := m.generateBucketsOnce(ctx, sha, format, cfg)
	if err == nil {
		err = writeFileAtomic(done, nil, false)
	}
	if errors.Is(context.Cause(ctx), errDeadline) {
		// Not remembered: on a loaded machine a legitimate image can run
		// out of time, and the caps already bound what a retry costs.
		return errDeadline
	}
	return err
}

func (m *Repo) generateBucketsOnce(ctx context.Context, sha string, format imageFormat, cfg image.Config) error {
	f, err := os.Open(m.store.contentPath(sha))
	if err != nil {
		return fmt.Errorf("opening content %s: %w", sha, err)
	}
	defer f.Close()
	src := io.NewSectionReader(f, 0, 1<<62)
	pixels := int64(cfg.Width) * int64(cfg.Height)
	if format == formatJPEG {
		limit := m.thumbLimits.maxScans(pixels)
		layout, err := walkJPEG(ctxReader{ctx, src}, limit)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			return m.refuse(sha, cannotThumbnail())
		}
		if layout.scans > limit || decodeBytes(cfg)+layout.coeffBytes > m.thumbLimits.MaxDecodeBytes {
			return m.refuse(sha, tooLargeToThumbnail())
		}
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding %s: %w", sha, err)
		}
	}
	img, err := decodeImage(format, ctxReader{ctx, src})
	if err := ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		return m.refuse(sha, cannotThumbnail())
	}
	img = onCanvas(img, cfg)

	type job struct {
		bucket thumbSpec
		plan   thumbPlan
		need   float64 // the fraction of source resolution the bucket keeps
	}
	var jobs []job
	for _, b := range thumbBuckets {
		p := planThumb(cfg.Width, cfg.Height, b)
		if p.original && format != formatGIF {
			continue // served as the original itself
		}
		need := max(float64(p.outW)/float64(p.src.Dx()), float64(p.outH)/float64(p.src.Dy()))
		jobs = append(jobs, job{b, p, need})
	}
	// Largest first, each from a box-filtered (area-averaged) reduction of
	// the one before by the largest whole factor that keeps it at least the
	// bucket's size: the kernel scaler then only resamples by less than 2x,
	// and the source is read once.
	slices.SortStableFunc(jobs, func(a, b job) int { return cmp.Compare(b.need, a.need) })
	base, fac := img, 1 // base pixel = fac×fac source pixels
	if !drawFastPath(img) {
		// x/image/draw reads other pixel types (16-bit, paletted) through
		// image.Image.At, ten times slower; convert them once.
		base = boxReduce(img, 1)
	}
	img = nil // only base is used from here on
	for _, j := range jobs {
		if k := int(math.Floor(1 / (j.need * float64(fac)))); k >= 2 {
			base = boxReduce(base, k)
			fac *= k
		} else if _, ok := base.(*image.RGBA); !ok {
			// The kernel reads each source pixel about ten times; YCbCr
			// converts colour on every read, RGBA never. Converting once
			// is cheaper, and only happens for sources within 2x of a
			// bucket, so the copy stays small.
			base = boxReduce(base, 1)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sr := j.plan.src
		if fac > 1 {
			sr = image.Rect(sr.Min.X/fac, sr.Min.Y/fac, sr.Max.X/fac, sr.Max.Y/fac).Intersect(base.Bounds())
			if sr.Empty() {
				sr = base.Bounds()
			}
		} else {
			sr = sr.Add(base.Bounds().Min)
		}
		dst := image.NewRGBA(image.Rect(0, 0, j.plan.outW, j.plan.outH))
		if sr.Dx() == j.plan.outW && sr.Dy() == j.plan.outH {
			draw.Draw(dst, dst.Bounds(), base, sr.Min, draw.Src) // crop only
		} else {
			draw.CatmullRom.Scale(dst, dst.Bounds(), base, sr, draw.Src, nil)
		}
		var buf bytes.Buffer
		if outputFormat(format) == formatJPEG {
			err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: jpegQuality})
		} else {
			err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst)
		}
		if err != nil {
			return fmt.Errorf("encoding thumbnail: %w", err)
		}
		// The cache can always be rebuilt, so it is written atomically
		// (never half a file) but without fsync.
		if err := writeFileAtomic(m.store.thumbPath(sha, bucketName(sha, j.bucket)), buf.Bytes(), false); err != nil {
			return fmt.Errorf("caching thumbnail: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// thumbError turns a generation failure into what the client sees.
func thumbError(err error) error {
	if errors.Is(err, errDeadline) {
		return tooLargeToThumbnail()
	}
	return err
}

// drawFastPath reports whether x/image/draw's scalers have a fast path for
// img's pixel type.
func drawFastPath(img image.Image) bool {
	switch img.(type) {
	case *image.RGBA, *image.NRGBA, *image.Gray, *image.YCbCr:
		return true
	}
	return false
}
