package media

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// An upload killed mid-stream leaves its temp file; the next start removes
// it (and half-written metadata records), and keeps everything acknowledged.
func TestNewRemovesPartialUploads(t *testing.T) {
	h := newHarness(t, 0)
	data := testImage(t, "png", 20, 20)
	id := h.upload(data, "image/png", "kept.png")

	partials := []string{
		filepath.Join(h.dir, "tmp", "upload-123456"),
		filepath.Join(h.dir, "tmp", "upload-789"),
		filepath.Join(h.dir, "meta", ".tmp-42"),
	}
	for _, p := range partials {
		if err := os.WriteFile(p, []byte("half an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Config{Dir: h.dir, ServerName: testServer}); err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, p := range partials {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: stat err %v, want it removed", p, err)
		}
	}
	if rep := h.do(http.MethodGet, "/_matrix/client/v1/media/download/"+testServer+"/"+id, nil, true, nil); rep.status != http.StatusOK {
		t.Fatalf("acknowledged upload after restart: %d %s", rep.status, rep.body)
	}
}
