package media

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/parley-im/parley/apierr"
)

const (
	testServer = "parley.test"
	testToken  = "secret-token"
	testUser   = "@alice:parley.test"
)

// fakeAuth stands in for the client API's token check.
func fakeAuth(r *http.Request) (string, error) {
	switch r.Header.Get("Authorization") {
	case "":
		return "", apierr.MissingToken("Missing access token")
	case "Bearer " + testToken:
		return testUser, nil
	default:
		return "", apierr.UnknownToken("Unknown access token")
	}
}

type harness struct {
	t    testing.TB
	repo *Repo
	dir  string
	srv  *httptest.Server
}

func newHarness(t testing.TB, limit int64) *harness {
	t.Helper()
	dir := t.TempDir()
	// The race detector and a loaded machine slow decoding a hundredfold:
	// tests must not meet the deadline unless they set it.
	repo, err := New(Config{Dir: dir, ServerName: testServer, MaxUploadBytes: limit,
		Thumbnails: ThumbnailLimits{Deadline: testDeadline}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := chi.NewRouter()
	repo.Mount(r, fakeAuth, nil)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &harness{t: t, repo: repo, dir: dir, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errcode() string {
	var e struct {
		Errcode string `json:"errcode"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Errcode
}

// do sends a request; body may be nil, and a non-bytes.Reader body is sent
// chunked (unknown length).
func (h *harness) do(method, path string, body io.Reader, authed bool, hdr map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatalf("NewRequest: %v", err)
	}
	if authed {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("reading %s: %v", path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// upload stores data and returns the media ID.
func (h *harness) upload(data []byte, contentType, filename string) string {
	h.t.Helper()
	path := "/_matrix/media/v3/upload"
	if filename != "" {
		path += "?filename=" + url.QueryEscape(filename)
	}
	rep := h.do(http.MethodPost, path, bytes.NewReader(data), true, map[string]string{"Content-Type": contentType})
	if rep.status != http.StatusOK {
		h.t.Fatalf("upload: %d %s", rep.status, rep.body)
	}
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.Unmarshal(rep.body, &out); err != nil {
		h.t.Fatalf("upload reply %s: %v", rep.body, err)
	}
	id, ok := strings.CutPrefix(out.ContentURI, "mxc://"+testServer+"/")
	if !ok || !validMediaID(id) || len(id) != mediaIDLen {
		h.t.Fatalf("bad content_uri %q", out.ContentURI)
	}
	return id
}

// countFiles counts regular files under dir.
func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return n
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	h := newHarness(t, 1024)
	tests := []struct {
		name string
		data []byte
		ct   string
	}{
		{"empty body", nil, "text/plain"},
		{"small text", []byte("hello, world"), "text/plain; charset=utf-8"},
		{"binary exactly at limit", bytes.Repeat([]byte{0, 1, 2, 3}, 256), "application/octet-stream"},
		{"no content type", []byte("x"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.upload(tt.data, tt.ct, "")
			for _, path := range []string{
				"/_matrix/client/v1/media/download/" + testServer + "/" + id,
				"/_matrix/client/v1/media/download/" + testServer + "/" + id + "/x.bin",
				"/_matrix/media/v3/download/" + testServer + "/" + id, // legacy: no token
				"/_matrix/media/r0/download/" + testServer + "/" + id + "/x.bin",
			} {
				authed := strings.HasPrefix(path, "/_matrix/client/")
				rep := h.do(http.MethodGet, path, nil, authed, nil)
				if rep.status != http.StatusOK || !bytes.Equal(rep.body, tt.data) {
					t.Fatalf("GET %s: %d, body %q, want %q", path, rep.status, rep.body, tt.data)
				}
				if got, want := rep.header.Get("Content-Length"), len(tt.data); got != strconv.Itoa(want) {
					t.Errorf("GET %s: Content-Length %q, want %d", path, got, want)
				}
			}
		})
	}
}

func TestRangeRequest(t *testing.T) {
	h := newHarness(t, 0)
	id := h.upload([]byte("0123456789"), "text/plain", "")
	rep := h.do(http.MethodGet, "/_matrix/media/v3/download/"+testServer+"/"+id, nil, false, map[string]string{"Range": "bytes=2-4"})
	if rep.status != http.StatusPartialContent || string(rep.body) != "234" {
		t.Fatalf("range: %d %q", rep.status, rep.body)
	}
}

func TestDedup(t *testing.T) {
	h := newHarness(t, 0)
	data := []byte("same bytes, different uploads")
	a := h.upload(data, "text/plain", "a.txt")
	b := h.upload(data, "application/octet-stream", "b.bin")
	if a == b {
		t.Fatalf("both uploads got media ID %s", a)
	}
	if n := countFiles(t, filepath.Join(h.dir, "content")); n != 1 {
		t.Errorf("content files = %d, want 1", n)
	}
	if n := countFiles(t, filepath.Join(h.dir, "meta")); n != 2 {
		t.Errorf("metadata files = %d, want 2", n)
	}
	if n := countFiles(t, filepath.Join(h.dir, "tmp")); n != 0 {
		t.Errorf("temp files left = %d", n)
	}
	rep := h.do(http.MethodGet, "/_matrix/media/v3/download/"+testServer+"/"+b, nil, false, nil)
	if cd := rep.header.Get("Content-Disposition"); cd != `attachment; filename="b.bin"` {
		t.Errorf("second upload keeps its own name: got %q", cd)
	}
}

// oneByteReader hides the length so the client sends the body chunked.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestUploadTooLarge(t *testing.T) {
	const limit = 100
	tests := []struct {
		name string
		body io.Reader
	}{
		{"declared by Content-Length", bytes.NewReader(make([]byte, limit+1))},
		{"streamed without length", oneByteReader{bytes.NewReader(make([]byte, 10*limit))}},
		{"streamed one over", oneByteReader{bytes.NewReader(make([]byte, limit+1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, limit)
			rep := h.do(http.MethodPost, "/_matrix/media/v3/upload", tt.body, true, nil)
			if rep.status != http.StatusRequestEntityTooLarge || rep.errcode() != "M_TOO_LARGE" {
				t.Fatalf("got %d %s, want 413 M_TOO_LARGE", rep.status, rep.body)
			}
			for _, sub := range []string{"content", "meta", "tmp"} {
				if n := countFiles(t, filepath.Join(h.dir, sub)); n != 0 {
					t.Errorf("%s: %d files left behind", sub, n)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	h := newHarness(t, 0)
	for _, path := range []string{"/_matrix/client/v1/media/config", "/_matrix/media/v3/config"} {
		rep := h.do(http.MethodGet, path, nil, true, nil)
		var got map[string]int64
		if err := json.Unmarshal(rep.body, &got); err != nil || rep.status != 200 || got["m.upload.size"] != 50<<20 {
			t.Errorf("%s: %d %s", path, rep.status, rep.body)
		}
	}
}

func TestAuthRequired(t *testing.T) {
	h := newHarness(t, 0)
	id := h.upload([]byte("x"), "text/plain", "")
	paths := []struct{ method, path string }{
		{http.MethodPost, "/_matrix/media/v3/upload"},
		{http.MethodPost, "/_matrix/media/r0/upload"},
		{http.MethodGet, "/_matrix/client/v1/media/config"},
		{http.MethodGet, "/_matrix/media/v3/config"},
		{http.MethodGet, "/_matrix/client/v1/media/download/" + testServer + "/" + id},
		{http.MethodGet, "/_matrix/client/v1/media/download/" + testServer + "/" + id + "/f.txt"},
		{http.MethodGet, "/_matrix/client/v1/media/thumbnail/" + testServer + "/" + id + "?width=1&height=1"},
	}
	for _, p := range paths {
		t.Run(p.method+" "+p.path, func(t *testing.T) {
			rep := h.do(p.method, p.path, strings.NewReader("x"), false, nil)
			if rep.status != http.StatusUnauthorized || rep.errcode() != "M_MISSING_TOKEN" {
				t.Errorf("no token: %d %s", rep.status, rep.body)
			}
			rep = h.do(p.method, p.path, strings.NewReader("x"), false, map[string]string{"Authorization": "Bearer wrong"})
			if rep.status != http.StatusUnauthorized || rep.errcode() != "M_UNKNOWN_TOKEN" {
				t.Errorf("bad token: %d %s", rep.status, rep.body)
			}
			if rep.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("error reply lacks nosniff")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, 0)
	id := h.upload([]byte("x"), "text/plain", "")
	for _, path := range []string{
		"/_matrix/media/v3/download/" + testServer + "/AAAAAAAAAAAAAAAAAAAAAAAA",
		"/_matrix/media/v3/download/other.example/" + id,
		"/_matrix/media/v3/download/" + testServer + "/..%2F..%2Fmeta",
		"/_matrix/media/v3/download/" + testServer + "/a.b",
		"/_matrix/media/v3/thumbnail/" + testServer + "/AAAAAAAAAAAAAAAAAAAAAAAA?width=8&height=8",
		"/_matrix/media/v3/thumbnail/other.example/" + id + "?width=8&height=8",
	} {
		rep := h.do(http.MethodGet, path, nil, false, nil)
		if rep.status != http.StatusNotFound || rep.errcode() != "M_NOT_FOUND" {
			t.Errorf("GET %s: %d %s, want 404 M_NOT_FOUND", path, rep.status, rep.body)
		}
	}
}
