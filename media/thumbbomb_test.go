package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/parley-im/parley/apierr"
)

// testDeadline replaces the 10 s generation deadline in tests.
const testDeadline = 5 * time.Minute

// newLimitedHarness is newHarness with thumbnail limits.
func newLimitedHarness(t testing.TB, lim ThumbnailLimits) *harness {
	t.Helper()
	dir := t.TempDir()
	if lim.Deadline == 0 {
		lim.Deadline = testDeadline
	}
	repo, err := New(Config{Dir: dir, ServerName: testServer, Thumbnails: lim})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := chi.NewRouter()
	repo.Mount(r, fakeAuth, nil)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &harness{t: t, repo: repo, dir: dir, srv: srv}
}

func legacyThumbURL(id, query string) string {
	return "/_matrix/media/v3/thumbnail/" + testServer + "/" + id + "?" + query
}

// pngHeader is a PNG signature and an IHDR of the given depth and colour
// type, without pixel data: the header is all the caps may look at.
func pngHeader(w, h uint32, depth, colorType byte) []byte {
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = depth, colorType
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr[:]...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// Thumbnail bombs are refused from their headers (and, for JPEG, a count of
// their scans) with 413 before any decoding, on the unauthenticated legacy
// route too, and the refusal is remembered. Legitimate images of the same
// formats still get thumbnails.
func TestThumbnailBombsRefusedBeforeDecoding(t *testing.T) {
	h := newHarness(t, 0)
	tests := []struct {
		name   string
		data   []byte
		status int
		code   string
	}{
		// The first bomb, scaled down to stay cheap if decoded:
		// 4 MP with 300 scans costs about 1.5 CPU-seconds to decode.
		{"progressive JPEG, 300 scans", progressiveBomb(2000, 2000, 300), 413, "M_TOO_LARGE"},
		// The second bomb: a 16-bit PNG of 40 MP (over the pixel
		// cap, as a header only: decoding it is what must not happen).
		{"16-bit PNG, 40 MP", pngHeader(8000, 5000, 16, 0), 413, "M_TOO_LARGE"},
		// Under the pixel cap, but 240 MB of pixels and a 120 MB copy.
		{"16-bit RGBA PNG, 30 MP", pngHeader(6000, 5000, 16, 6), 413, "M_TOO_LARGE"},
		{"16-bit PNG, 1 MP, no pixel data", pngHeader(1000, 1000, 16, 0), 400, "M_UNKNOWN"},
		{"progressive JPEG, 10 scans", progressiveBomb(500, 500, 10), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.upload(tt.data, "image/jpeg", "")
			for round := 0; round < 2; round++ {
				rep := h.do(http.MethodGet, legacyThumbURL(id, "width=320&height=240"), nil, false, nil)
				if rep.status != tt.status || rep.errcode() != tt.code {
					t.Fatalf("round %d: got %d %q, want %d %s", round, rep.status, rep.errcode(), tt.status, tt.code)
				}
			}
		})
	}
	waitQueue(t, h.repo.decodes, 0, 0)
}

// A source with more pixels than the memory cap allows for its pixel type
// is refused; the cap is per decode.
func TestThumbnailMemoryCap(t *testing.T) {
	h := newLimitedHarness(t, ThumbnailLimits{MaxDecodeBytes: 1 << 20})
	tests := []struct {
		name   string
		data   []byte
		status int
	}{
		{"8-bit grey, 0.24 MB", gray8PNG(t, 600, 400), 200},
		{"16-bit RGBA, 2.9 MB", pngHeader(600, 400, 16, 6), 413},
		// 1 MP progressive: 1 MB of pixels and 4 MB of coefficients.
		{"progressive JPEG, 5 MB", progressiveBomb(1000, 1000, 2), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.upload(tt.data, "image/png", "")
			if rep := h.do(http.MethodGet, thumbURL(id, "width=96&height=96&method=crop"), nil, true, nil); rep.status != tt.status {
				t.Fatalf("got %d %s, want %d", rep.status, rep.body, tt.status)
			}
		})
	}
}

func gray8PNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	var buf bytes.Buffer
	if err := (&pngEncoderFast).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// One decode makes every size bucket: after the first request, the source
// is no longer needed for any size. (Before, each requested size decoded
// the source anew: 1-2 s each for the 16-bit 40 MP PNG.)
func TestThumbnailBucketsFromOneDecode(t *testing.T) {
	h := newHarness(t, 0)
	id := h.upload(gray16PNG(900, 700), "image/png", "")
	if rep := h.do(http.MethodGet, thumbURL(id, "width=32&height=32&method=crop"), nil, true, nil); rep.status != http.StatusOK {
		t.Fatalf("first: %d %s", rep.status, rep.body)
	}
	md, err := h.repo.store.readMeta(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.repo.store.contentPath(md.SHA256)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"width=96&height=96&method=crop", "width=50&height=50&method=crop", "width=320&height=240",
		"width=600&height=400", "width=800&height=600", "width=2000&height=2000", "width=200&height=200&method=crop"} {
		rep := h.do(http.MethodGet, thumbURL(id, q), nil, true, nil)
		if rep.status != http.StatusOK {
			t.Errorf("%s without the source: got %d %s, want 200 from the buckets", q, rep.status, rep.body)
			continue
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(rep.body))
		if err != nil || cfg.Width < 32 {
			t.Errorf("%s: thumbnail %dx%d (%v)", q, cfg.Width, cfg.Height, err)
		}
	}
}

// getThumb fetches a thumbnail with ctx, reporting the status (0 when the
// request itself failed, e.g. because ctx ended).
func getThumb(ctx context.Context, h *harness, id string) (int, http.Header) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+legacyThumbURL(id, "width=96&height=96&method=crop"), nil)
	if err != nil {
		return 0, nil
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// waitQueue polls until the decode queue has the given numbers of running
// and pending jobs.
func waitQueue(t testing.TB, q *decodeQueue, running, pending int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, p := q.stats()
		if r == running && p == pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("decode queue: %d running, %d pending; want %d, %d", r, p, running, pending)
		}
		runtime.Gosched()
	}
}

// With the decoder busy and the queue full, a further generation is refused
// at once with 429 M_LIMIT_EXCEEDED and Retry-After; a request whose client
// goes leaves the queue, and its job never runs.
func TestThumbnailQueueBoundAndCancel(t *testing.T) {
	h := newLimitedHarness(t, ThumbnailLimits{Concurrency: 1, MaxPending: 1})
	release := make(chan struct{})
	blocked := make(chan error, 1)
	go func() {
		blocked <- h.repo.decodes.do(context.Background(), "blocker", 1, func(context.Context) error { <-release; return nil })
	}()
	waitQueue(t, h.repo.decodes, 1, 0)

	first := h.upload(testImage(t, "png", 300, 300), "image/png", "")
	second := h.upload(testImage(t, "jpeg", 300, 300), "image/jpeg", "")
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan int, 1)
	go func() { st, _ := getThumb(ctx, h, first); gone <- st }()
	waitQueue(t, h.repo.decodes, 1, 1)

	st, hdr := getThumb(context.Background(), h, second)
	if st != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("over the queue: got %d (Retry-After %q), want 429 with Retry-After", st, hdr.Get("Retry-After"))
	}

	cancel() // the first client goes
	<-gone
	waitQueue(t, h.repo.decodes, 1, 0)
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	waitQueue(t, h.repo.decodes, 0, 0)
	md, err := h.repo.store.readMeta(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.repo.store.thumbPath(md.SHA256, doneName(md.SHA256))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the abandoned job ran (stat %v)", err)
	}
	// Nothing is left blocked: both now work.
	for _, id := range []string{first, second} {
		if st, _ := getThumb(context.Background(), h, id); st != http.StatusOK {
			t.Errorf("after the queue drained: %d, want 200", st)
		}
	}
}

// A cheap job queued behind expensive ones runs first.
func TestThumbnailQueueCheapestFirst(t *testing.T) {
	q := newDecodeQueue(1, 8, time.Minute)
	release := make(chan struct{})
	go func() {
		_ = q.do(context.Background(), "running", 1, func(context.Context) error { <-release; return nil })
	}()
	waitQueue(t, q, 1, 0)
	order := make(chan string, 4)
	done := make(chan struct{}, 4)
	for i, c := range []struct {
		key  string
		cost int64
	}{{"big1", 30e6}, {"big2", 30e6}, {"big3", 20e6}, {"small", 1e6}} {
		go func() {
			_ = q.do(context.Background(), c.key, c.cost, func(context.Context) error { order <- c.key; return nil })
			done <- struct{}{}
		}()
		waitQueue(t, q, 1, i+1)
	}
	close(release)
	for range 4 {
		<-done
	}
	close(order)
	var got []string
	for k := range order {
		got = append(got, k)
	}
	want := []string{"small", "big3", "big1", "big2"}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

// A generation past its deadline answers 413 when the deadline passes.
func TestThumbnailDeadline(t *testing.T) {
	h := newLimitedHarness(t, ThumbnailLimits{Deadline: time.Millisecond})
	id := h.upload(progressiveBomb(2000, 2000, 30), "image/jpeg", "") // ~0.3 s of decoding
	for round := 0; round < 2; round++ {
		rep := h.do(http.MethodGet, thumbURL(id, "width=96&height=96&method=crop"), nil, true, nil)
		if rep.status != http.StatusRequestEntityTooLarge || rep.errcode() != "M_TOO_LARGE" {
			t.Fatalf("round %d: got %d %s, want 413 M_TOO_LARGE", round, rep.status, rep.body)
		}
	}
	waitQueue(t, h.repo.decodes, 0, 0)
}

// The scan counter agrees with the decoder on real files.
func TestWalkJPEGCountsScans(t *testing.T) {
	var baseline bytes.Buffer
	if err := jpeg.Encode(&baseline, image.NewRGBA(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		data      []byte
		limit     int
		wantScans int
		wantProg  bool
	}{
		{"baseline", baseline.Bytes(), 32, 1, false},
		{"progressive, 10 scans", progressiveBomb(640, 480, 10), 32, 10, true},
		{"stops past the limit", progressiveBomb(640, 480, 300), 32, 33, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := walkJPEG(bytes.NewReader(tt.data), tt.limit)
			if err != nil || l.scans != tt.wantScans || l.progressive != tt.wantProg {
				t.Fatalf("got %+v, %v; want %d scans, progressive %v", l, err, tt.wantScans, tt.wantProg)
			}
		})
	}
	if _, err := walkJPEG(bytes.NewReader([]byte("\xff\xd8\xff\xda\x00")), 32); err == nil {
		t.Error("truncated file: no error")
	}
}

// A decoder that panics fails that thumbnail with 400, not the process.
func TestThumbnailJobPanicIsContained(t *testing.T) {
	q := newDecodeQueue(1, 1, time.Minute)
	err := q.do(context.Background(), "k", 1, func(context.Context) error { panic("crafted input") })
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want a 400 *apierr.Error", err)
	}
	waitQueue(t, q, 0, 0)
}

// cancelAfterReader cancels its context after the first read, as a client
// going away in the middle of a decode would.
type cancelAfterReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancelAfterReader) Read(p []byte) (int, error) {
	c.reads++
	n, err := c.r.Read(p)
	c.cancel()
	return n, err
}

// A decode stops at its next read once its context ends: the bomb
// kept burning for tens of seconds after the client left, because the
// decoder read the whole small file in one buffer before working.
func TestDecodeStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &cancelAfterReader{r: bytes.NewReader(progressiveBomb(2000, 2000, 300)), cancel: cancel}
	_, err := decodeImage(formatJPEG, ctxReader{ctx, src})
	if err == nil || ctx.Err() == nil {
		t.Fatalf("decode err = %v after the context ended, want an error", err)
	}
	if src.reads != 1 {
		t.Errorf("the decoder read %d times from the source, want 1 (stop at the next read)", src.reads)
	}
}
