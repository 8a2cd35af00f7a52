package media

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// withComment makes a JPEG unique (a COM segment after SOI) so that each
// benchmark iteration meets a source the repository has never seen.
func withComment(jpg []byte, tag string) []byte {
	out := make([]byte, 0, len(jpg)+len(tag)+4)
	out = append(out, jpg[:2]...)
	out = append(out, 0xFF, 0xFE, byte((len(tag)+2)>>8), byte(len(tag)+2))
	out = append(out, tag...)
	return append(out, jpg[2:]...)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThumbnailBomb measures the CPU one request for a thumbnail of
// each of the bombs costs, on the unauthenticated legacy route, for
// a source never seen before (the upload is included). Before the caps the
// progressive JPEG cost 37 CPU-seconds and the PNG 1-2 s per size.
func BenchmarkThumbnailBomb(b *testing.B) {
	bombs := []struct {
		name   string
		data   []byte
		unique func(data []byte, i int) []byte
	}{
		{"progressive-jpeg-40MP-3000-scans", progressiveBomb(8000, 5000, 3000),
			func(d []byte, i int) []byte { return withComment(d, strconv.Itoa(i)) }},
		// Under the pixel cap: refused by the scan count, in the queue.
		{"progressive-jpeg-31MP-3000-scans", progressiveBomb(5600, 5600, 3000),
			func(d []byte, i int) []byte { return withComment(d, strconv.Itoa(i)) }},
		{"png-16bit-40MP", gray16PNG(8000, 5000),
			func(d []byte, i int) []byte { return append(slices.Clip(d), strconv.Itoa(i)...) }},
	}
	for _, bomb := range bombs {
		b.Run(bomb.name, func(b *testing.B) {
			h := newHarness(b, 0)
			client := h.srv.Client()
			b.SetBytes(int64(len(bomb.data)))
			b.ReportAllocs()
			i := 0
			start := cpuTime(b)
			for b.Loop() {
				i++
				id := h.upload(bomb.unique(bomb.data, i), "image/jpeg", "")
				resp, err := client.Get(h.srv.URL + legacyThumbURL(id, "width=320&height=240"))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					b.Fatalf("status %d, want 413", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Millisecond)/float64(i), "cpu-ms/op")
		})
	}
}

// BenchmarkThumbnailLegitBehindBombs measures how long a legitimate
// thumbnail (a 320x240 JPEG) waits when the decode queue is full of the
// most expensive images the caps still allow: progressive JPEGs with as
// many scans as their size may have. Each iteration queues 4 of them (one
// running), then times the legitimate request. PARLEY_BENCH_THUMB_SIDE sets
// their side in pixels (default 400, to keep 100 iterations quick; 5600 is
// about the 32 MP cap).
func BenchmarkThumbnailLegitBehindBombs(b *testing.B) {
	side := 400
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_THUMB_SIDE")); err == nil && v > 0 {
		side = v
	}
	h := newHarness(b, 0)
	scans := h.repo.thumbLimits.maxScans(int64(side) * int64(side))
	heavy := progressiveBomb(side, side, scans)
	legit := testImage(b, "jpeg", 320, 240)
	const queued = 4
	var lat []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		ctx, cancel := context.WithCancel(context.Background())
		// Hold the decoder while the queue fills, then let the bombs run.
		release := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = h.repo.decodes.do(ctx, "blocker", 0, func(context.Context) error { <-release; return nil })
		})
		waitQueue(b, h.repo.decodes, 1, 0)
		for j := 0; j < queued; j++ {
			id := h.upload(withComment(heavy, fmt.Sprintf("%d-%d", i, j)), "image/jpeg", "")
			wg.Go(func() { getThumb(ctx, h, id) })
			waitQueue(b, h.repo.decodes, 1, j+1)
		}
		id := h.upload(withComment(legit, strconv.Itoa(i)), "image/jpeg", "")
		close(release)
		for _, pending := h.repo.decodes.stats(); pending == queued; _, pending = h.repo.decodes.stats() {
			runtime.Gosched()
		}
		b.StartTimer()
		t0 := time.Now()
		if st, _ := getThumb(context.Background(), h, id); st != http.StatusOK {
			b.Fatalf("legitimate thumbnail: %d", st)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		cancel()
		wg.Wait()
		waitQueue(b, h.repo.decodes, 0, 0)
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Millisecond), "legit-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/float64(time.Millisecond), "legit-p99-ms")
	b.ReportMetric(float64(scans), "bomb-scans")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MB") // Maxrss is in KiB on Linux
	}
}

// BenchmarkThumbnailWorstAllowed measures the CPU one generation (one
// decode, every bucket) of the most expensive JPEG the caps let through
// costs: a progressive greyscale JPEG with as many scans as its size may
// have. PARLEY_BENCH_THUMB_SIDE sets its side (default 400; 5600 is about
// the 32 MP cap).
func BenchmarkThumbnailWorstAllowed(b *testing.B) {
	side := 400
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_THUMB_SIDE")); err == nil && v > 0 {
		side = v
	}
	h := newHarness(b, 0)
	scans := h.repo.thumbLimits.maxScans(int64(side) * int64(side))
	id := h.upload(progressiveBomb(side, side, scans), "image/jpeg", "")
	md, err := h.repo.store.readMeta(id)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(h.repo.store.contentPath(md.SHA256))
	if err != nil {
		b.Fatal(err)
	}
	format, cfg, err := probeImage(f, h.repo.thumbLimits)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start, n := cpuTime(b), 0
	for b.Loop() {
		n++
		if err := os.RemoveAll(h.repo.store.thumbRoot()); err != nil {
			b.Fatal(err)
		}
		if err := h.repo.generateBuckets(b.Context(), md.SHA256, format, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Millisecond)/float64(n), "cpu-ms/op")
	b.ReportMetric(float64(scans), "scans")
}
