package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

// maxResponseBytes bounds what is read of a gateway's answer: it is a
// small JSON object.
const maxResponseBytes = 64 << 10

// outcome is what one delivery attempt came to.
type outcome int

const (
	delivered outcome = iota // the gateway took it
	rejected                 // the gateway rejected the pushkey: remove the pusher
	abandoned                // the gateway refused it for good (a 4xx): drop the row
	retry                    // network error, timeout, 5xx or 429: try again later
)

// batchSize is how many queued notifications a worker reads at once. They
// are sent one request each, in order, and acknowledged together: one
// write per batch rather than per push. A crash in the middle sends at
// most a batch again (delivery is at least once; gateways dedupe by
// event_id).
const batchSize = 32

// runPusher sends a pusher's queue, oldest first, until it is empty.
func (s *Service) runPusher(id int64) {
	defer s.wg.Done()
	failures := 0
	for {
		if s.ctx.Err() != nil {
			s.stop(id, false)
			return
		}
		batch, err := s.store.PushNextItems(s.ctx, id, batchSize)
		if err != nil {
			failures++
			if !s.sleep(failures) {
				s.stop(id, false)
				return
			}
			continue
		}
		if len(batch) == 0 {
			s.mu.Lock()
			orphans := s.pending[id] > 0 // counted rows, yet none to send
			s.mu.Unlock()
			if orphans {
				if err := s.store.PushDropOrphans(s.ctx, id); err != nil && s.ctx.Err() == nil {
					s.log.Warn("push: dropping the rows of a deleted pusher failed", "pusher", id, "err", err)
				}
			}
			s.mu.Lock()
			if w := s.workers[id]; w != nil && w.dirty {
				w.dirty = false
				s.mu.Unlock()
				continue
			}
			delete(s.workers, id)
			delete(s.pending, id)
			s.mu.Unlock()
			return
		}
		done := make([]int64, 0, len(batch))
		failed, gone := false, false
	send:
		for i := range batch {
			switch s.attempt(&batch[i]) {
			case delivered:
				failures = 0
				s.stats.sent.Add(1)
				done = append(done, batch[i].Item.Seq)
			case abandoned:
				s.stats.abandoned.Add(1)
				done = append(done, batch[i].Item.Seq)
			case rejected:
				s.stats.rejected.Add(1)
				s.log.Info("push: gateway rejected pushkey; pusher removed", "user", batch[i].Pusher.UserID, "app_id", batch[i].Pusher.AppID)
				gone = true
				break send
			case retry:
				s.stats.failed.Add(1)
				failed = true
				break send
			}
		}
		if gone {
			if err := s.store.DeletePusherByID(s.ctx, id); err == nil {
				s.stop(id, true)
				return
			}
			failed = true // the pusher is still there: its rows are tried again
		}
		s.ack(id, done)
		if failed {
			failures++
			if !s.sleep(failures) {
				s.stop(id, false)
				return
			}
		}
	}
}

// stop ends the pusher's worker; gone drops its pending count too.
func (s *Service) stop(id int64, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, id)
	if gone {
		delete(s.pending, id)
	}
}

func (s *Service) ack(id int64, seqs []int64) {
	removed, err := s.store.PushAck(s.ctx, id, seqs)
	if err != nil {
		// The rows stay and are sent again: at least once, never lost.
		if s.ctx.Err() == nil {
			s.log.Warn("push: ack failed; notifications may be sent twice", "pusher", id, "err", err)
		}
		return
	}
	if removed > 0 {
		// No floor at zero: the scanner adds a page's rows to the count
		// after their commit, so an ack may come first and take it below
		// zero for a moment; a worker that finds the queue empty resets it.
		s.mu.Lock()
		s.pending[id] -= removed
		s.mu.Unlock()
	}
}

// sleep waits out the backoff after the n-th consecutive failure; false if
// the service stopped meanwhile.
func (s *Service) sleep(n int) bool {
	t := time.NewTimer(backoff(n, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.Jitter()))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// backoff returns how long to wait after the n-th consecutive failure
// (n >= 1): min doubled per failure, capped at max, then scaled by a jitter
// factor in [0.5, 1.5) from r (in [0, 1)), so that many pushers of one
// gateway that went down together do not all come back at once.
func backoff(n int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * (0.5 + r))
}

// attempt sends one notification.
func (s *Service) attempt(n *storage.PushNext) outcome {
	body, err := notificationBody(n)
	if err != nil {
		s.log.Warn("push: cannot build notification; dropped", "pusher", n.Item.PusherID, "err", err)
		return abandoned
	}
	var d pusherData
	if err := json.Unmarshal([]byte(n.Pusher.Data), &d); err != nil || d.URL == "" {
		return abandoned // not an http pusher any more
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return abandoned
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Debug("push: gateway unreachable", "pusher", n.Item.PusherID, "err", err)
		}
		return retry
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return retry
	case resp.StatusCode >= 400 || resp.StatusCode < 200 || resp.StatusCode >= 300:
		s.log.Warn("push: gateway refused a notification; dropped", "pusher", n.Item.PusherID, "status", resp.StatusCode)
		return abandoned
	case err != nil:
		return retry // cut mid-answer: we cannot know whether it was taken
	}
	for _, k := range ParseRejected(raw) {
		if k == n.Pusher.PushKey {
			return rejected
		}
	}
	return delivered
}

// ParseRejected reads the pushkeys a gateway's answer rejects. A body that
// is not the spec's object rejects nothing (the notification was taken).
func ParseRejected(body []byte) []string {
	if !gjson.ValidBytes(body) {
		return nil
	}
	r := gjson.GetBytes(body, "rejected")
	if !r.IsArray() {
		return nil
	}
	var out []string
	for _, k := range r.Array() {
		if k.Type == gjson.String {
			out = append(out, k.String())
		}
	}
	return out
}

// notification is the Push Gateway API's request body member.
type notification struct {
	EventID string          `json:"event_id"`
	RoomID  string          `json:"room_id"`
	Type    string          `json:"type,omitempty"`
	Sender  string          `json:"sender,omitempty"`
	Content json.RawMessage `json:"content,omitempty"`
	Prio    string          `json:"prio"`
	Counts  counts          `json:"counts"`
	Devices []device        `json:"devices"`
}

type counts struct {
	Unread      int64 `json:"unread"`
	MissedCalls int64 `json:"missed_calls"`
}

type device struct {
	AppID     string          `json:"app_id"`
	PushKey   string          `json:"pushkey"`
	PushKeyTS int64           `json:"pushkey_ts"` // seconds, as the spec says
	Data      json.RawMessage `json:"data,omitempty"`
	Tweaks    json.RawMessage `json:"tweaks"`
}

// notificationBody builds the request body: the full format (the event's
// type, sender and content) unless the pusher's data.format is
// event_id_only; the pusher's data goes to the gateway without its url.
func notificationBody(n *storage.PushNext) ([]byte, error) {
	var data map[string]json.RawMessage
	if err := json.Unmarshal([]byte(n.Pusher.Data), &data); err != nil {
		return nil, fmt.Errorf("pusher data: %w", err)
	}
	var format string
	_ = json.Unmarshal(data["format"], &format)
	delete(data, "url")
	var dataJSON json.RawMessage
	if len(data) > 0 {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		dataJSON = b
	}
	tw := json.RawMessage(n.Item.Tweaks)
	if !json.Valid(tw) {
		tw = json.RawMessage("{}")
	}
	note := notification{EventID: n.Item.EventID, RoomID: n.Item.RoomID, Prio: "low",
		Counts: counts{Unread: n.Item.Unread},
		Devices: []device{{AppID: n.Pusher.AppID, PushKey: n.Pusher.PushKey, PushKeyTS: n.Pusher.PushKeyTS / 1000,
			Data: dataJSON, Tweaks: tw}}}
	if n.Item.High {
		note.Prio = "high"
	}
	if format != formatEventID && len(n.Event) > 0 {
		ev := gjson.ParseBytes(n.Event)
		note.Type, note.Sender = ev.Get("type").String(), ev.Get("sender").String()
		if c := ev.Get("content"); c.IsObject() {
			note.Content = json.RawMessage(c.Raw)
		}
	}
	return json.Marshal(map[string]any{"notification": note})
}
