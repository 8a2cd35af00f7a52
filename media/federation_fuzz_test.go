package media

import (
	"bytes"
	"io"
	"net/http/httptest"
	"testing"
)

// FuzzParseFederationMedia feeds arbitrary answers to the parser of
// another server's media/download answer: it never panics, and what
// writeMultipart writes parses back to the same type, name and bytes.
func FuzzParseFederationMedia(f *testing.F) {
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n"), "image/png", "a.png", []byte("data"))
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nLocation: https://x/\r\n\r\n\r\n--b--\r\n"), "text/plain", "", []byte{})
	f.Add("text/plain", []byte("x"), "application/octet-stream", "naïve \"q\".txt", []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, contentType string, body []byte, partType, name string, data []byte) {
		if _, _, r, err := ParseFederationMedia(contentType, bytes.NewReader(body)); err == nil {
			_, _ = io.Copy(io.Discard, r)
		}
		ct := sanitizeContentType(partType)
		rec := httptest.NewRecorder()
		if err := writeMultipart(rec, ct, contentDisposition("attachment", name), bytes.NewReader(data)); err != nil {
			t.Fatalf("writeMultipart: %v", err)
		}
		gotType, _, r, err := ParseFederationMedia(rec.Header().Get("Content-Type"), rec.Body)
		if err != nil {
			t.Fatalf("parse of our own answer: %v", err)
		}
		got, err := io.ReadAll(r)
		if err != nil || gotType != ct || !bytes.Equal(got, data) {
			t.Fatalf("round trip = %q, %q, %v; want %q, %q", gotType, got, err, ct, data)
		}
	})
}
