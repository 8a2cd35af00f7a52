package media

import (
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"testing"
)

// benchGet fetches path and discards the body, failing on anything but 200.
func benchGet(b *testing.B, client *http.Client, url string) {
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func BenchmarkDownload1MB(b *testing.B) {
	h := newHarness(b, 0)
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	id := h.upload(data, "application/octet-stream", "blob.bin")
	url := h.srv.URL + "/_matrix/media/v3/download/" + testServer + "/" + id
	client := h.srv.Client()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		benchGet(b, client, url)
	}
}

func BenchmarkThumbnailCachedHit(b *testing.B) {
	h := newHarness(b, 0)
	id := h.upload(testImage(b, "jpeg", 1024, 768), "image/jpeg", "")
	url := h.srv.URL + "/_matrix/media/v3/thumbnail/" + testServer + "/" + id + "?width=96&height=96&method=crop"
	client := h.srv.Client()
	benchGet(b, client, url) // generate once
	b.ReportAllocs()
	for b.Loop() {
		benchGet(b, client, url)
	}
}

// BenchmarkThumbnailGenerate measures a cold thumbnail of a JPEG photo: one
// decode making every size bucket, the cost each decode slot stands for.
// The photo is 1600x1200 so that 100 iterations stay quick;
// PARLEY_BENCH_THUMB_FULL=1 makes it 12 MP (4000x3000).
func BenchmarkThumbnailGenerate(b *testing.B) {
	h := newHarness(b, 0)
	w, ht := 1600, 1200
	if os.Getenv("PARLEY_BENCH_THUMB_FULL") != "" {
		w, ht = 4000, 3000
	}
	src := testImage(b, "jpeg", w, ht)
	id := h.upload(src, "image/jpeg", "")
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
	for b.Loop() {
		if err := os.RemoveAll(h.repo.store.thumbRoot()); err != nil {
			b.Fatal(err)
		}
		if err := h.repo.generateBuckets(b.Context(), md.SHA256, format, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
