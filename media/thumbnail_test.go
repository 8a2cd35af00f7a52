package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testImage encodes a w×h gradient in format ("png", "jpeg" or "gif").
func testImage(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, nil)
	case "gif":
		err = gif.EncodeAll(&buf, &gif.GIF{
			Image: []*image.Paletted{toPaletted(img), toPaletted(img)},
			Delay: []int{10, 10},
		})
	}
	if err != nil {
		t.Fatalf("encoding %s: %v", format, err)
	}
	return buf.Bytes()
}

func toPaletted(src image.Image) *image.Paletted {
	p := image.NewPaletted(src.Bounds(), palette.Plan9)
	for y := src.Bounds().Min.Y; y < src.Bounds().Max.Y; y++ {
		for x := src.Bounds().Min.X; x < src.Bounds().Max.X; x++ {
			p.Set(x, y, src.At(x, y))
		}
	}
	return p
}

// bombPNG is a PNG signature plus a valid IHDR claiming w×h pixels and no
// image data: a few dozen bytes that would need tens of GB to decode.
func bombPNG(w, h uint32) []byte {
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr[:]...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func thumbURL(id, query string) string {
	return "/_matrix/client/v1/media/thumbnail/" + testServer + "/" + id + "?" + query
}

func TestThumbnailSizes(t *testing.T) {
	h := newHarness(t, 0)
	sources := map[string][]byte{}
	ids := map[string]string{}
	for _, f := range []string{"png", "jpeg", "gif"} {
		sources[f] = testImage(t, f, 400, 200)
		ids[f] = h.upload(sources[f], "image/"+f, "pic."+f)
	}
	tests := []struct {
		format, query string
		wantType      string
		wantW, wantH  int
		wantOriginal  bool
	}{
		// Every request is answered from the smallest covering size
		// bucket (32x32 and 96x96 crop; 320x240, 640x480, 800x600 scale).
		{"png", "width=100&height=100&method=scale", "image/png", 320, 160, false},
		{"png", "width=100&height=20&method=scale", "image/png", 320, 160, false},
		{"png", "width=100&height=100&method=crop", "image/png", 320, 160, false}, // bigger than the crop buckets
		{"png", "width=50&height=80&method=crop", "image/png", 96, 96, false},
		{"png", "width=300&height=300&method=crop", "image/png", 400, 200, true}, // fits 640x480
		{"png", "width=800&height=800&method=scale", "image/png", 400, 200, true},
		{"png", "width=100&height=100", "image/png", 320, 160, false}, // scale by default
		{"jpeg", "width=100&height=100&method=scale", "image/jpeg", 320, 160, false},
		{"jpeg", "width=96&height=96&method=crop", "image/jpeg", 96, 96, false},
		{"jpeg", "width=400&height=200&method=crop", "image/jpeg", 400, 200, true},
		{"gif", "width=100&height=100&method=scale", "image/png", 320, 160, false},
		{"gif", "width=32&height=32&method=crop", "image/png", 32, 32, false},
		{"gif", "width=800&height=800&method=scale", "image/png", 400, 200, false}, // static first frame
		{"gif", "width=800&height=800&method=scale&animated=true", "image/gif", 400, 200, true},
		{"gif", "width=100&height=100&method=scale&animated=true", "image/png", 320, 160, false},
	}
	for _, tt := range tests {
		t.Run(tt.format+"?"+tt.query, func(t *testing.T) {
			var first []byte
			for round := 0; round < 2; round++ { // second round is a cache hit
				rep := h.do(http.MethodGet, thumbURL(ids[tt.format], tt.query), nil, true, nil)
				if rep.status != http.StatusOK {
					t.Fatalf("round %d: %d %s", round, rep.status, rep.body)
				}
				if got := rep.header.Get("Content-Type"); got != tt.wantType {
					t.Fatalf("Content-Type %q, want %q", got, tt.wantType)
				}
				cd := rep.header.Get("Content-Disposition")
				if want := fmt.Sprintf(`inline; filename="thumbnail.%s"`, imageFormatOf(tt.wantType).ext()); cd != want {
					t.Errorf("Content-Disposition %q, want %q", cd, want)
				}
				cfg, _, err := image.DecodeConfig(bytes.NewReader(rep.body))
				if err != nil || cfg.Width != tt.wantW || cfg.Height != tt.wantH {
					t.Fatalf("got %dx%d (%v), want %dx%d", cfg.Width, cfg.Height, err, tt.wantW, tt.wantH)
				}
				if tt.wantOriginal != bytes.Equal(rep.body, sources[tt.format]) {
					t.Errorf("returned original = %v, want %v", !tt.wantOriginal, tt.wantOriginal)
				}
				if round == 1 && !bytes.Equal(first, rep.body) {
					t.Errorf("repeat request returned different bytes")
				}
				first = rep.body
			}
		})
	}
}

func imageFormatOf(contentType string) imageFormat {
	for _, f := range []imageFormat{formatPNG, formatJPEG, formatGIF} {
		if f.contentType() == contentType {
			return f
		}
	}
	return formatUnknown
}

// A cache hit must not need the source at all.
func TestThumbnailCacheHitWithoutSource(t *testing.T) {
	h := newHarness(t, 0)
	data := testImage(t, "png", 300, 300)
	id := h.upload(data, "image/png", "")
	q := "width=64&height=64&method=crop"
	if rep := h.do(http.MethodGet, thumbURL(id, q), nil, true, nil); rep.status != http.StatusOK {
		t.Fatalf("first: %d %s", rep.status, rep.body)
	}
	md, err := h.repo.store.readMeta(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.repo.store.contentPath(md.SHA256)); err != nil {
		t.Fatal(err)
	}
	rep := h.do(http.MethodGet, "/_matrix/media/r0/thumbnail/"+testServer+"/"+id+"?"+q, nil, false, nil)
	if rep.status != http.StatusOK || rep.header.Get("Content-Type") != "image/png" {
		t.Fatalf("cached (legacy path): %d %s", rep.status, rep.header)
	}
}

func TestThumbnailErrors(t *testing.T) {
	h := newHarness(t, 0)
	pngID := h.upload(testImage(t, "png", 10, 10), "image/png", "")
	text := h.upload([]byte("not an image at all"), "image/png", "") // lies about its type
	bomb := h.upload(bombPNG(100000, 100000), "image/png", "")
	corrupt := h.upload([]byte("\x89PNG\r\n\x1a\ngarbage"), "image/png", "")
	tests := []struct {
		name, id, query string
		status          int
		code            string
	}{
		{"missing width", pngID, "height=10", 400, "M_MISSING_PARAM"},
		{"missing height", pngID, "width=10", 400, "M_MISSING_PARAM"},
		{"zero width", pngID, "width=0&height=10", 400, "M_INVALID_PARAM"},
		{"negative height", pngID, "width=10&height=-1", 400, "M_INVALID_PARAM"},
		{"non-integer", pngID, "width=1.5&height=10", 400, "M_INVALID_PARAM"},
		{"huge", pngID, "width=99999999999999999999&height=10", 400, "M_INVALID_PARAM"},
		{"bad method", pngID, "width=10&height=10&method=stretch", 400, "M_INVALID_PARAM"},
		{"bad animated", pngID, "width=10&height=10&animated=yes", 400, "M_INVALID_PARAM"},
		{"not an image", text, "width=10&height=10", 400, "M_UNKNOWN"},
		{"corrupt png", corrupt, "width=10&height=10", 400, "M_UNKNOWN"},
		{"decompression bomb", bomb, "width=32&height=32&method=crop", 413, "M_TOO_LARGE"},
		{"unknown media", "AAAAAAAAAAAAAAAAAAAAAAAA", "width=10&height=10", 404, "M_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := h.do(http.MethodGet, thumbURL(tt.id, tt.query), nil, true, nil)
			if rep.status != tt.status || rep.errcode() != tt.code {
				t.Errorf("got %d %s, want %d %s", rep.status, rep.body, tt.status, tt.code)
			}
		})
	}
}

// Concurrent requests for the same uncached thumbnail all succeed and agree.
func TestThumbnailConcurrent(t *testing.T) {
	h := newHarness(t, 0)
	id := h.upload(testImage(t, "jpeg", 640, 480), "image/jpeg", "")
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for i := range results {
		wg.Go(func() {
			rep := h.do(http.MethodGet, thumbURL(id, "width=96&height=96&method=crop"), nil, true, nil)
			if rep.status == http.StatusOK {
				results[i] = rep.body
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r == nil || !bytes.Equal(r, results[0]) {
			t.Fatalf("request %d: missing or different result", i)
		}
	}
}

// A request whose client has gone does not wait for a busy decoder.
func TestThumbnailQueueHonoursContext(t *testing.T) {
	q := newDecodeQueue(1, 4, time.Minute)
	release := make(chan struct{})
	go func() {
		_ = q.do(context.Background(), "busy", 1, func(context.Context) error { <-release; return nil })
	}()
	defer close(release)
	for running, _ := q.stats(); running != 1; running, _ = q.stats() {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := q.do(ctx, "other", 1, func(context.Context) error { t.Error("ran a job nobody waits for"); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
