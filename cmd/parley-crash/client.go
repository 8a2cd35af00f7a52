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
	"strings"
	"syscall"
	"time"
)

// device is one logged-in device. Its token is what makes a retried txnId
// the same send: Parley keys idempotency on (user, device, txnId).
type device struct {
	userID string
	id     string
	token  string
}

// api is a minimal Matrix client. It does not use hstest, whose helpers
// fail the test on any error: here errors are the data being collected.
type api struct {
	base string
	send *http.Client // short timeout: a kill must surface quickly
	read *http.Client // setup and checking, where the server stays up
}

func newAPI(base string, sendTimeout time.Duration) *api {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	return &api{
		base: base,
		send: &http.Client{Transport: tr, Timeout: sendTimeout},
		read: &http.Client{Transport: tr, Timeout: 2 * time.Minute},
	}
}

func (a *api) close() { a.read.CloseIdleConnections() }

// statusError is a non-200 answer.
type statusError struct {
	Status  int
	Errcode string
	Body    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %.200s", e.Status, e.Errcode, e.Body)
}

// call sends one request; out, when not nil, receives the 200 body.
func (a *api) call(ctx context.Context, hc *http.Client, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("marshal: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	what, _, _ := strings.Cut(path, "?") // the query (a sync filter) only makes errors long
	what = method + " " + what
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // it repeats method and URL
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: read body: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		var me struct {
			Errcode string `json:"errcode"`
		}
		json.Unmarshal(raw, &me)
		return fmt.Errorf("%s: %w", what, &statusError{resp.StatusCode, me.Errcode, string(raw)})
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s: decode: %w", what, err)
		}
	}
	return nil
}

type loginResponse struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
}

func (l loginResponse) device() *device {
	return &device{userID: l.UserID, id: l.DeviceID, token: l.AccessToken}
}

// register creates an account through the open m.login.dummy flow.
func (a *api) register(ctx context.Context, name string) (*device, error) {
	body := map[string]any{"username": name, "password": "pw-" + name, "initial_device_display_name": "crash-1"}
	var se *statusError
	var session struct {
		Session string `json:"session"`
	}
	err := a.call(ctx, a.read, "POST", "/_matrix/client/v3/register", "", body, nil)
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		return nil, fmt.Errorf("register %s: want a 401 UIA challenge, got %w", name, err)
	}
	if err := json.Unmarshal([]byte(se.Body), &session); err != nil {
		return nil, fmt.Errorf("register %s: challenge: %w", name, err)
	}
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": session.Session}
	var res loginResponse
	if err := a.call(ctx, a.read, "POST", "/_matrix/client/v3/register", "", body, &res); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	return res.device(), nil
}

// login adds a device to an existing account.
func (a *api) login(ctx context.Context, name string) (*device, error) {
	body := map[string]any{"type": "m.login.password", "password": "pw-" + name,
		"identifier": map[string]string{"type": "m.id.user", "user": name}, "initial_device_display_name": "crash-2"}
	var res loginResponse
	if err := a.call(ctx, a.read, "POST", "/_matrix/client/v3/login", "", body, &res); err != nil {
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	return res.device(), nil
}

func (a *api) createRoom(ctx context.Context, d *device, name string, invite []string, direct bool) (string, error) {
	body := map[string]any{"preset": "private_chat", "name": name, "invite": invite, "is_direct": direct}
	var res struct {
		RoomID string `json:"room_id"`
	}
	if err := a.call(ctx, a.read, "POST", "/_matrix/client/v3/createRoom", d.token, body, &res); err != nil {
		return "", fmt.Errorf("create room %s: %w", name, err)
	}
	return res.RoomID, nil
}

func (a *api) join(ctx context.Context, d *device, roomID string) error {
	return a.call(ctx, a.read, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join", d.token, map[string]any{}, nil)
}

// sendResult is one attempt at a send. outcome names it: "ok",
// "http_<status>", "no_event_id", "timeout", "refused", "reset", "canceled"
// or "neterr".
type sendResult struct {
	eventID, outcome string
	status           int
	err              error
}

func (a *api) sendMessage(ctx context.Context, d *device, roomID, txn, body string) sendResult {
	var res struct {
		EventID string `json:"event_id"`
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/" + url.PathEscape(txn)
	err := a.call(ctx, a.send, "PUT", path, d.token, map[string]any{"msgtype": "m.text", "body": body}, &res)
	var se *statusError
	switch {
	case err == nil && res.EventID != "":
		return sendResult{eventID: res.EventID, outcome: "ok", status: http.StatusOK}
	case err == nil:
		return sendResult{outcome: "no_event_id", status: http.StatusOK, err: errors.New("200 without event_id")}
	case errors.As(err, &se):
		return sendResult{outcome: fmt.Sprintf("http_%d", se.Status), status: se.Status, err: err}
	}
	return sendResult{outcome: classify(err), err: err}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE),
		strings.Contains(err.Error(), "server closed idle connection"): // net/http keeps this one unexported
		return "reset"
	}
	return "neterr"
}

// event is the part of a client event the checker needs.
type event struct {
	EventID string          `json:"event_id"`
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
	TS      int64           `json:"origin_server_ts"`
}

// body is the message text, or "" when there is none.
func (e event) body() string {
	var c struct {
		Body string `json:"body"`
	}
	json.Unmarshal(e.Content, &c)
	return c.Body
}

// messages reads one page of /messages.
func (a *api) messages(ctx context.Context, d *device, roomID, dir, from string) ([]event, string, error) {
	q := url.Values{"dir": {dir}, "limit": {"1000"}}
	if from != "" {
		q.Set("from", from)
	}
	var res struct {
		Chunk []event `json:"chunk"`
		End   string  `json:"end"`
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/messages?" + q.Encode()
	if err := a.call(ctx, a.read, "GET", path, d.token, nil, &res); err != nil {
		return nil, "", err
	}
	return res.Chunk, res.End, nil
}

type syncTimeline struct {
	Events    []event `json:"events"`
	Limited   bool    `json:"limited"`
	PrevBatch string  `json:"prev_batch"`
}

// initialSync runs a fresh sync (no since) with a large timeline limit and
// returns each joined room's timeline.
func (a *api) initialSync(ctx context.Context, d *device) (map[string]syncTimeline, error) {
	filter := `{"room":{"timeline":{"limit":1000},"state":{"lazy_load_members":true}}}`
	var res struct {
		Rooms struct {
			Join map[string]struct {
				Timeline syncTimeline `json:"timeline"`
			} `json:"join"`
		} `json:"rooms"`
	}
	path := "/_matrix/client/v3/sync?timeout=0&filter=" + url.QueryEscape(filter)
	if err := a.call(ctx, a.read, "GET", path, d.token, nil, &res); err != nil {
		return nil, err
	}
	out := make(map[string]syncTimeline, len(res.Rooms.Join))
	for id, r := range res.Rooms.Join {
		out[id] = r.Timeline
	}
	return out, nil
}
