package homeserver

import (
	"io"
	"net/http"
	"time"
)

// maxBodyTime bounds a whole request body read, however steady: it fits a
// maximal upload on a slow link, as the old whole-request ReadTimeout did.
const maxBodyTime = 5 * time.Minute

// withBodyIdleTimeout makes every read of a request body wait at most idle
// for the next bytes (and the whole body at most maxBodyTime), so a client
// that trickles its body frees its connection after idle rather than after
// minutes. The deadline is set on the connection before each read through
// http.ResponseController and cleared when the body ends, so that a
// long-poll answered later is not cut by it.
func withBodyIdleTimeout(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		// A shallow copy, not r itself: net/http decides how to drain an
		// unread body after the handler by the type of its own request's
		// Body, and must still see its own (a large unread rest closes the
		// connection at once instead of being read first).
		r2 := *r
		r2.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle, end: time.Now().Add(maxBodyTime)}
		h.ServeHTTP(w, &r2)
	})
}

// idleBody is a request body that moves the connection's read deadline
// before each read. Owned by the request's handler goroutine.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
	done bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	deadline := time.Now().Add(b.idle)
	if deadline.After(b.end) {
		deadline = b.end
	}
	_ = b.rc.SetReadDeadline(deadline) // fails only on connections without deadlines (tests' recorders)
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// The whole body is in: later reads of this connection (the
		// server watching for a client that goes away) must not inherit
		// our deadline.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		// A stall or a broken body: keep the expired deadline, so the
		// server's drain of the unread rest fails at once and it closes
		// the connection instead of waiting on the client.
		b.done = true
	}
	return n, err
}
