package media

import (
	"mime"
	"net/http"
	"strings"
)

// contentSecurityPolicy is the policy the spec recommends for served media:
// even if a browser renders an upload as a document, it runs sandboxed with
// no scripts.
const contentSecurityPolicy = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"

// withMediaHeaders sets the headers that must accompany every media response,
// errors included: the JSON error of a media URL is still something a browser
// may be tricked into loading as a document.
func withMediaHeaders(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		// Lets web clients that enable cross-origin isolation embed media.
		hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h(w, r)
	}
}

// cacheControl is set on successful content. A media ID never changes its
// bytes, so caches may keep it for a year; "private" because on the
// authenticated endpoints the response depends on the caller's token and must
// not sit in a shared cache.
const cacheControl = "private, max-age=31536000, immutable"

// inlineType reports whether mt (a base media type, no parameters) is one of
// the types the spec ("Serving inline content") says a server may serve with
// Content-Disposition: inline. Everything else goes out as an attachment, so
// a browser never renders it as a page in the media origin.
func inlineType(mt string) bool {
	switch mt {
	case "text/css", "text/plain", "text/csv",
		"application/json", "application/ld+json",
		"image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
		"video/mp4", "video/webm", "video/ogg", "video/quicktime",
		"audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg",
		"audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac":
		return true
	}
	return false
}

// sanitizeContentType normalises the Content-Type of an upload. What does not
// parse as a MIME type is stored as application/octet-stream, so a stored
// type can always be echoed back as a well-formed header.
func sanitizeContentType(raw string) string {
	const fallback = "application/octet-stream"
	mt, params, err := mime.ParseMediaType(raw)
	if err != nil || !strings.Contains(mt, "/") {
		return fallback
	}
	if out := mime.FormatMediaType(mt, params); out != "" {
		return out
	}
	return fallback
}

// baseType is the lower-cased media type without parameters.
func baseType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "application/octet-stream"
	}
	return mt
}

// isInline reports whether content of this type may be shown inline.
func isInline(contentType string) bool { return inlineType(baseType(contentType)) }

// servedContentType is the Content-Type a download goes out with. Types that
// a browser would execute as a document or script (HTML, XML and therefore
// SVG, JavaScript, multipart) become application/octet-stream: they are
// already attachments, and this keeps them inert even for a client that
// ignores Content-Disposition. Other stored types are returned as uploaded so
// that clients can still tell a PDF from a ZIP.
func servedContentType(stored string) string {
	mt := baseType(stored)
	if inlineType(mt) {
		return stored
	}
	for _, bad := range []string{"html", "xml", "script", "multipart/"} {
		if strings.Contains(mt, bad) {
			return "application/octet-stream"
		}
	}
	return stored
}

// contentDisposition builds the header value for disposition ("inline" or
// "attachment") and filename, per RFC 6266. An empty filename yields no
// filename parameter, as the spec asks for uploads made without one. The
// quoted filename= is an ASCII-only fallback for old agents; when the name
// is not plain ASCII the exact name follows as an RFC 8187 filename*
// parameter (UTF-8, percent-encoded), which modern agents prefer.
func contentDisposition(disposition, filename string) string {
	if filename == "" {
		return disposition
	}
	filename = strings.ToValidUTF8(filename, "\uFFFD")
	fallback, exact := asciiFallback(filename)
	var b strings.Builder
	b.Grow(len(disposition) + 2*len(filename) + 32)
	b.WriteString(disposition)
	b.WriteString(`; filename="`)
	b.WriteString(fallback)
	b.WriteByte('"')
	if !exact {
		b.WriteString("; filename*=utf-8''")
		pctEncodeAttr(&b, filename)
	}
	return b.String()
}

// asciiFallback replaces everything that is unsafe inside a quoted-string or
// in a file name (non-ASCII, controls, quote, backslash, path separators,
// '%' which some agents decode) with '_'. exact reports whether nothing had
// to be replaced.
func asciiFallback(name string) (fallback string, exact bool) {
	var b strings.Builder
	b.Grow(len(name))
	exact = true
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '/' || r == '%' {
			b.WriteByte('_')
			exact = false
			continue
		}
		b.WriteRune(r)
	}
	return b.String(), exact
}

// pctEncodeAttr writes s percent-encoded except for RFC 8187 attr-chars.
func pctEncodeAttr(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
}

// isAttrChar is RFC 8187's attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&"
// / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~".
func isAttrChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
