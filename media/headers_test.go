package media

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDownloadHeaders(t *testing.T) {
	h := newHarness(t, 0)
	tests := []struct {
		name, uploadType  string
		wantType, wantDis string
	}{
		{"png is inline", "image/png", "image/png", "inline"},
		{"plain text keeps charset", "text/plain; charset=utf-8", "text/plain; charset=utf-8", "inline"},
		{"upper-case type is normalised", "IMAGE/JPEG", "image/jpeg", "inline"},
		{"html is neutralised", "text/html", "application/octet-stream", "attachment"},
		{"xhtml is neutralised", "application/xhtml+xml", "application/octet-stream", "attachment"},
		{"svg is neutralised", "image/svg+xml", "application/octet-stream", "attachment"},
		{"javascript is neutralised", "text/javascript", "application/octet-stream", "attachment"},
		{"pdf keeps its type", "application/pdf", "application/pdf", "attachment"},
		{"garbage type", "not a type", "application/octet-stream", "attachment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.upload([]byte("<script>alert(1)</script>"), tt.uploadType, "f")
			for _, authed := range []bool{true, false} {
				path := "/_matrix/media/v3/download/" + testServer + "/" + id
				if authed {
					path = "/_matrix/client/v1/media/download/" + testServer + "/" + id
				}
				rep := h.do(http.MethodGet, path, nil, authed, nil)
				hd := rep.header
				if got := hd.Get("Content-Type"); got != tt.wantType {
					t.Errorf("Content-Type %q, want %q", got, tt.wantType)
				}
				if got := hd.Get("Content-Disposition"); got != tt.wantDis+`; filename="f"` {
					t.Errorf("Content-Disposition %q, want %s", got, tt.wantDis)
				}
				want := map[string]string{
					"X-Content-Type-Options":       "nosniff",
					"Content-Security-Policy":      contentSecurityPolicy,
					"Cross-Origin-Resource-Policy": "cross-origin",
					"Cache-Control":                cacheControl,
				}
				for k, v := range want {
					if got := hd.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
			}
		})
	}
}

func TestFilenames(t *testing.T) {
	h := newHarness(t, 0)
	tests := []struct {
		name, upload, pathName, want string
		wantFallback                 string
	}{
		{"no name gives no filename", "", "", "", ""},
		{"plain ascii", "report.pdf", "", "report.pdf", "report.pdf"},
		{"unicode and quotes", `naïve "quoted" 文件.txt`, "", `naïve "quoted" 文件.txt`, `na_ve _quoted_ __.txt`},
		{"backslash and percent", `a\b%41.txt`, "", `a\b%41.txt`, `a_b_41.txt`},
		{"path name overrides", "orig.txt", `über "x".png`, `über "x".png`, `_ber _x_.png`},
		{"path name with slash", "orig.txt", "a/b.txt", "a/b.txt", "a_b.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.upload([]byte("data"), "application/octet-stream", tt.upload)
			path := "/_matrix/client/v1/media/download/" + testServer + "/" + id
			if tt.pathName != "" {
				path += "/" + url.PathEscape(tt.pathName)
			}
			rep := h.do(http.MethodGet, path, nil, true, nil)
			if rep.status != http.StatusOK {
				t.Fatalf("GET: %d %s", rep.status, rep.body)
			}
			cd := rep.header.Get("Content-Disposition")
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil || disp != "attachment" {
				t.Fatalf("Content-Disposition %q: %q, %v", cd, disp, err)
			}
			if params["filename"] != tt.want {
				t.Errorf("filename %q, want %q (header %q)", params["filename"], tt.want, cd)
			}
			if tt.wantFallback != "" && !strings.Contains(cd, `filename="`+tt.wantFallback+`"`) {
				t.Errorf("header %q lacks ASCII fallback %q", cd, tt.wantFallback)
			}
		})
	}
}

func TestContentDisposition(t *testing.T) {
	tests := []struct{ disp, name, want string }{
		{"inline", "", "inline"},
		{"inline", "a.png", `inline; filename="a.png"`},
		{"attachment", "é", `attachment; filename="_"; filename*=utf-8''%C3%A9`},
		{"attachment", "a b", `attachment; filename="a b"`},
		{"attachment", "x\r\ny", `attachment; filename="x__y"; filename*=utf-8''x%0D%0Ay`},
		{"attachment", "\xff", `attachment; filename="_"; filename*=utf-8''%EF%BF%BD`},
	}
	for _, tt := range tests {
		if got := contentDisposition(tt.disp, tt.name); got != tt.want {
			t.Errorf("contentDisposition(%q, %q) = %q, want %q", tt.disp, tt.name, got, tt.want)
		}
	}
}

func TestSanitizeContentType(t *testing.T) {
	tests := map[string]string{
		"":                          "application/octet-stream",
		"image/png":                 "image/png",
		"Text/Plain; Charset=UTF-8": "text/plain; charset=UTF-8",
		"text":                      "application/octet-stream",
		"text/plain; charset=":      "application/octet-stream",
		"a/b\r\nX-Evil: 1":          "application/octet-stream",
	}
	for in, want := range tests {
		if got := sanitizeContentType(in); got != want {
			t.Errorf("sanitizeContentType(%q) = %q, want %q", in, got, want)
		}
	}
}
