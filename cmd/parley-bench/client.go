package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// client is a minimal Matrix client-server API client shared by every
// simulated user. One transport serves them all so that connections are
// reused; it keeps enough idle connections for every held long-poll, or each
// answered poll would cost a new TCP connection.
type client struct {
	base      string
	presence  string // set_presence of every sync
	transport *http.Transport
	requests  *http.Client // everything but long-polls
	polls     *http.Client // long-polls: the server holds them for the poll timeout

	pollFilterQuery string // url.QueryEscape(pollFilter); static
	presenceQuery   string // url.QueryEscape(presence); static
}

func newClient(base, presence string, conns int, requestTimeout, pollTimeout time.Duration) *client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no overall limit: the per-host one is what matters
		MaxIdleConnsPerHost:   conns + 64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &client{
		base:      strings.TrimSuffix(base, "/"),
		presence:  presence,
		transport: tr,
		requests:  &http.Client{Transport: tr, Timeout: requestTimeout},
		polls:     &http.Client{Transport: tr, Timeout: pollTimeout + 30*time.Second},

		pollFilterQuery: url.QueryEscape(pollFilter),
		presenceQuery:   url.QueryEscape(presence),
	}
}

func (c *client) close() { c.transport.CloseIdleConnections() }

// user is one registered account with one device.
type user struct {
	localpart string
	id        string
	token     string
	txn       atomic.Uint64 // last transaction ID used on the device
	// pollFilterID is the escaped ID of u's stored long-poll filter
	// (uploadFilter), set during setup; "" sends the filter inline.
	pollFilterID string
}

// statusError is a non-200 answer.
type statusError struct {
	Status     int
	Errcode    string
	Body       string
	RetryAfter time.Duration // from retry_after_ms on a 429
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %.200s", e.Status, e.Errcode, e.Body)
}

// do sends one request and returns the body of a 200 answer.
func (c *client) do(ctx context.Context, hc *http.Client, method, path, token string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	what, _, _ := strings.Cut(path, "?") // a sync filter only makes errors long
	what = method + " " + what
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // it repeats method and URL
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	raw, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("%s: read body: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		res := gjson.ParseBytes(raw)
		se := &statusError{Status: resp.StatusCode, Errcode: res.Get("errcode").String(), Body: string(raw),
			RetryAfter: time.Duration(res.Get("retry_after_ms").Int()) * time.Millisecond}
		return nil, fmt.Errorf("%s: %w", what, se)
	}
	return raw, nil
}

// readBody reads a whole answer. With a Content-Length (the server sends
// one with every /sync) it is one allocation of the right size rather than
// io.ReadAll's doublings: the load tool shares the machine with the server,
// so its own garbage per delivery shows in the latencies it measures.
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= maxSizedBody {
		raw := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	return io.ReadAll(resp.Body)
}

// maxSizedBody bounds the buffer a Content-Length alone may make readBody
// allocate; a larger answer is read as it comes.
const maxSizedBody = 16 << 20

// setupCall is a request made while building a scenario: its body is
// marshalled, its answer parsed, and a 429 is waited out and retried, so
// that a server with rate limits still gets set up (slowly).
func (c *client) setupCall(ctx context.Context, method, path, token string, body any) (gjson.Result, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return gjson.Result{}, fmt.Errorf("marshal: %w", err)
		}
	}
	for {
		out, err := c.do(ctx, c.requests, method, path, token, raw)
		var se *statusError
		if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
			return gjson.ParseBytes(out), err
		}
		wait := max(se.RetryAfter, 100*time.Millisecond)
		select {
		case <-ctx.Done():
			return gjson.Result{}, fmt.Errorf("%w (while rate limited)", err)
		case <-time.After(wait):
		}
	}
}

func roomPath(roomID string) string { return "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) }

// createRoom makes a room that anyone may join, so members need one request
// (a join) rather than two (invite and join): this matters for 10,000.
func (c *client) createRoom(ctx context.Context, owner *user, name string) (string, error) {
	body := map[string]any{"preset": "public_chat", "name": name}
	res, err := c.setupCall(ctx, "POST", "/_matrix/client/v3/createRoom", owner.token, body)
	if err != nil {
		return "", fmt.Errorf("create room %s: %w", name, err)
	}
	id := res.Get("room_id").String()
	if id == "" {
		return "", fmt.Errorf("create room %s: no room_id in %.200s", name, res.Raw)
	}
	return id, nil
}

// join joins u to roomID. Dendrite answers 202 when a join takes long and
// finishes it in the background; the join is then asked again (joining twice is harmless)
// until the server confirms it.
func (c *client) join(ctx context.Context, u *user, roomID string) error {
	for {
		_, err := c.setupCall(ctx, "POST", roomPath(roomID)+"/join", u.token, map[string]any{})
		var se *statusError
		if err == nil {
			return nil
		}
		if !errors.As(err, &se) || se.Status != http.StatusAccepted {
			return fmt.Errorf("%s joins %s: %w", u.id, roomID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s joins %s: %w", u.id, roomID, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Bench messages carry these content keys. The send time is in
// microseconds because canonical JSON (which a homeserver checks event
// content against) allows integers only up to 2^53, and Unix nanoseconds are
// past that.
const (
	contentID     = "parley_bench_id"
	contentSentUS = "parley_bench_ts_us"
)

// messageBody is an m.text message carrying its ID and send time, built by
// hand because it is on the hot path of every sending goroutine.
func messageBody(id uint64, sent time.Time) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"msgtype":"m.text","body":"parley-bench `...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `","`+contentID+`":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"`+contentSentUS+`":`...)
	b = strconv.AppendInt(b, sent.UnixMicro(), 10)
	return append(b, '}')
}

// send posts one bench message and returns once the server acknowledges it.
func (c *client) send(ctx context.Context, u *user, roomID string, id uint64, sent time.Time) error {
	txn := "pb" + strconv.FormatUint(u.txn.Add(1), 10)
	_, err := c.do(ctx, c.requests, "PUT", roomPath(roomID)+"/send/m.room.message/"+txn, u.token, messageBody(id, sent))
	return err
}

// channelPath is a channel's path in Parley's channels API.
func channelPath(channelID string) string {
	return "/_parley/client/v1/channels/" + url.PathEscape(channelID)
}

// createChannel has owner create a broadcast channel with editors, who may
// post too, and returns its ID.
func (c *client) createChannel(ctx context.Context, owner *user, name string, editors []string) (string, error) {
	if editors == nil {
		editors = []string{}
	}
	res, err := c.setupCall(ctx, "POST", "/_parley/client/v1/channels", owner.token, map[string]any{"name": name, "editors": editors})
	if err != nil {
		return "", fmt.Errorf("create channel: %w", err)
	}
	id := res.Get("channel_id").String()
	if id == "" {
		return "", fmt.Errorf("create channel: no channel_id in %.200s", res.Raw)
	}
	return id, nil
}

// follow has u follow the channel.
func (c *client) follow(ctx context.Context, u *user, channelID string) error {
	if _, err := c.setupCall(ctx, "POST", channelPath(channelID)+"/follow", u.token, map[string]any{}); err != nil {
		return fmt.Errorf("%s follows %s: %w", u.id, channelID, err)
	}
	return nil
}

// postBody is a channel post carrying a bench message's ID and send time
// in its text, which is all a post has to carry them: "parley-bench ID US".
func postBody(id uint64, sent time.Time) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"text":"`+benchPostPrefix...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, sent.UnixMicro(), 10)
	return append(b, `"}`...)
}

// benchPostPrefix starts the text of every bench post.
const benchPostPrefix = "parley-bench "

// post posts one bench message to the channel and returns once the server
// acknowledges it.
func (c *client) post(ctx context.Context, u *user, channelID string, id uint64, sent time.Time) error {
	_, err := c.do(ctx, c.requests, "POST", channelPath(channelID)+"/posts", u.token, postBody(id, sent))
	return err
}
