package media

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"mime"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-im/parley/apierr"
)

// FuzzContentDisposition checks that any file name yields a header that is
// plain printable ASCII (no header injection), parses as RFC 6266, and
// round-trips the exact (UTF-8-repaired) name.
func FuzzContentDisposition(f *testing.F) {
	for _, s := range []string{"", "a.png", `naïve "quoted" 文件.txt`, "x\r\nSet-Cookie: a=b", "\xff\xfe", `\"\\`, "%41", "a;b=c", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, disp := range []string{"inline", "attachment"} {
			h := contentDisposition(disp, name)
			for i := 0; i < len(h); i++ {
				if h[i] < 0x20 || h[i] > 0x7e {
					t.Fatalf("header %q has byte %#x at %d", h, h[i], i)
				}
			}
			got, params, err := mime.ParseMediaType(h)
			if err != nil {
				t.Fatalf("ParseMediaType(%q): %v", h, err)
			}
			if got != disp {
				t.Fatalf("disposition %q, want %q", got, disp)
			}
			want := strings.ToValidUTF8(name, "\uFFFD")
			if params["filename"] != want {
				t.Fatalf("filename %q, want %q (header %q)", params["filename"], want, h)
			}
		}
	})
}

// FuzzThumbQuery checks that the query parser either yields a spec within
// bounds or a 400 Matrix error, and that any accepted spec produces a plan
// that never upscales and never leaves the source.
func FuzzThumbQuery(f *testing.F) {
	for _, q := range []string{"width=32&height=32&method=crop", "width=1&height=1", "width=-1", "width=65536&height=65537", "width=0x10&height=1", "animated=true&width=5&height=5", "width=%zz"} {
		f.Add(q, 400, 200)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, ow, oh int) {
		q, _ := url.ParseQuery(rawQuery) // a partial parse is what a handler sees too
		s, err := parseThumbQuery(q)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("error %v is not a 400 *apierr.Error", err)
			}
			return
		}
		if s.width < 1 || s.height < 1 || s.width > maxThumbDim || s.height > maxThumbDim {
			t.Fatalf("accepted out-of-range spec %+v", s)
		}
		if ow < 1 || oh < 1 || int64(ow)*int64(oh) > (ThumbnailLimits{}).withDefaults().MaxPixels {
			return // probeImage refuses these before planning
		}
		p := planThumb(ow, oh, s)
		if !p.src.In(sourceRect(ow, oh)) || p.src.Empty() {
			t.Fatalf("plan %+v leaves the %dx%d source", p, ow, oh)
		}
		if p.outW < 1 || p.outH < 1 || p.outW > p.src.Dx() || p.outH > p.src.Dy() {
			t.Fatalf("plan %+v upscales or is empty (source %dx%d, spec %+v)", p, ow, oh, s)
		}
		if !p.original && (p.outW > s.width || p.outH > s.height) {
			t.Fatalf("plan %+v exceeds the request %+v", p, s)
		}
	})
}

func sourceRect(w, h int) image.Rectangle { return image.Rect(0, 0, w, h) }

// FuzzWalkJPEG: the scan counter never panics, never counts past its limit
// plus one (it must stop reading there), and never sizes memory negative.
func FuzzWalkJPEG(f *testing.F) {
	var baseline bytes.Buffer
	_ = jpeg.Encode(&baseline, image.NewGray(image.Rect(0, 0, 16, 16)), nil)
	f.Add(baseline.Bytes(), 4)
	f.Add(progressiveBomb(64, 64, 20), 8)
	f.Add([]byte("\xff\xd8\xff\xda\x00\x02\xff\x00\xff\xd0\xff\xd9"), 2)
	f.Add([]byte("\xff\xd8\xff\xc2\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00\xff\xd9"), 2)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		limit = 1 + int(uint(limit)%64)
		l, err := walkJPEG(bytes.NewReader(data), limit)
		if l.scans > limit+1 {
			t.Fatalf("counted %d scans with limit %d", l.scans, limit)
		}
		if l.coeffBytes < 0 {
			t.Fatalf("negative coefficient bytes %d", l.coeffBytes)
		}
		_ = err
	})
}
