package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
)

// pollConn is one poller's own HTTP/1.1 connection for its long-polls.
//
// The load tool shares the machine with the server it measures, so its
// CPU per delivery shows in the latencies: with net/http's client, every
// held poll had three goroutines (the poller, the transport's read and
// write loops, handing each request over channels) and a request's
// headers, URL and response objects to allocate and collect. A poller
// that owns its connection writes one prebuilt request and reads the
// answer into a buffer it reuses: one goroutine per poll and almost no
// garbage (docs/benchmarks.md, "Fan-out: per-delivery CPU (round 4)").
//
// It speaks only what a long-poll needs: GET, a body sized by
// Content-Length (or chunked, or up to the close), keep-alive. Plain http
// targets only; https ones use net/http (client.do).
//
// A pollConn belongs to its poller goroutine; only close may be called
// from elsewhere (through the context's AfterFunc).
type pollConn struct {
	addr string // host:port to dial
	host string // Host header

	conn      net.Conn
	br        *bufio.Reader
	stopClose func() bool // unregisters the ctx hook that closes conn
	req       []byte      // the request being written; reused
	body      []byte      // the last answer's body; reused, valid until the next poll
}

// newPollConn returns a pollConn for base, or nil when base is not a
// plain http URL (the poller then uses net/http).
func newPollConn(base string) *pollConn {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &pollConn{addr: addr, host: u.Host}
}

// poll sends GET path with the bearer token and returns the body of a 200
// answer. The body is valid until the next call. deadline bounds the
// whole exchange. Any failure closes the connection; the next poll dials
// again.
func (pc *pollConn) poll(ctx context.Context, path []byte, token string, deadline time.Time) ([]byte, error) {
	if pc.conn == nil {
		if err := pc.dial(ctx); err != nil {
			return nil, err
		}
	}
	body, keep, err := pc.exchange(path, token, deadline)
	var se *statusError
	if !keep || (err != nil && !errors.As(err, &se)) { // an error answer was read whole
		pc.close()
	}
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the hang-up was ours
	}
	return body, err
}

func (pc *pollConn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", pc.addr)
	if err != nil {
		return fmt.Errorf("GET /sync: %w", err)
	}
	pc.conn = c
	if pc.br == nil {
		pc.br = bufio.NewReaderSize(c, 4096)
	} else {
		pc.br.Reset(c)
	}
	// A cancelled poller must not sit in a read for the poll timeout.
	pc.stopClose = context.AfterFunc(ctx, func() { c.Close() })
	return nil
}

func (pc *pollConn) close() {
	if pc.conn == nil {
		return
	}
	pc.stopClose()
	pc.conn.Close()
	pc.conn = nil
}

// exchange writes one request and reads its answer. keep reports whether
// the connection may carry the next one.
func (pc *pollConn) exchange(path []byte, token string, deadline time.Time) (body []byte, keep bool, err error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		return nil, false, err
	}
	b := append(pc.req[:0], "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, pc.host...)
	b = append(b, "\r\nAuthorization: Bearer "...)
	b = append(b, token...)
	b = append(b, "\r\n\r\n"...)
	pc.req = b
	if _, err := pc.conn.Write(b); err != nil {
		return nil, false, fmt.Errorf("GET /sync: %w", err)
	}
	status, length, chunked, keep, err := readHead(pc.br)
	if err != nil {
		return nil, false, fmt.Errorf("GET /sync: %w", err)
	}
	switch {
	case chunked:
		if pc.body, err = readAllInto(pc.body[:0], httputil.NewChunkedReader(pc.br)); err == nil {
			err = skipTrailer(pc.br) // the chunked reader stops at the last chunk
		}
	case length >= 0 && length <= maxSizedBody:
		if cap(pc.body) < int(length) {
			pc.body = make([]byte, length)
		}
		pc.body = pc.body[:length]
		_, err = io.ReadFull(pc.br, pc.body)
	case length < 0:
		pc.body, err = readAllInto(pc.body[:0], pc.br) // delimited by the close
		keep = false
	default:
		return nil, false, fmt.Errorf("GET /sync: answer of %d bytes is too big", length)
	}
	if err != nil {
		return nil, false, fmt.Errorf("GET /sync: read body: %w", err)
	}
	if status != http.StatusOK {
		res := gjson.ParseBytes(pc.body)
		return nil, keep, fmt.Errorf("GET /sync: %w", &statusError{Status: status, Errcode: res.Get("errcode").String(),
			Body: string(pc.body), RetryAfter: time.Duration(res.Get("retry_after_ms").Int()) * time.Millisecond})
	}
	return pc.body, keep, nil
}

// readHead reads an HTTP/1.1 answer's status line and headers and returns
// the status, the Content-Length (-1 when absent), whether the body is
// chunked and whether the connection stays open.
func readHead(br *bufio.Reader) (status int, length int64, chunked, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, false, false, fmt.Errorf("malformed status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, false, fmt.Errorf("malformed status line %q", line)
	}
	keep, length = line[7] == '1', -1 // HTTP/1.0 closes unless told otherwise
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errors.New("header line too long")
			}
			return 0, 0, false, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return status, length, chunked, keep, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, 0, false, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, 0, false, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			} else if asciiEqualFold(value, "keep-alive") {
				keep = true
			}
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readAllInto reads r to its end, appending to dst, at most maxSizedBody.
func readAllInto(dst []byte, r io.Reader) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	n, err := buf.ReadFrom(io.LimitReader(r, maxSizedBody+1))
	if err == nil && n > maxSizedBody {
		err = errors.New("answer too big")
	}
	return buf.Bytes(), err
}

// skipTrailer reads a chunked body's trailer, up to the empty line.
func skipTrailer(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
