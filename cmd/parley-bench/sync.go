package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// pollFilter keeps long-poll answers small with standard Matrix filter
// fields only: lazy-loaded members, no presence, typing, receipts or account
// data, and a timeline long enough that a burst of bench messages is not cut
// by a limited timeline.
const pollFilter = `{"room":{"timeline":{"limit":200},"state":{"lazy_load_members":true},` +
	`"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}},` +
	`"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}`

// firstPollFilter is pollFilter for a poller's first sync, which is only
// there to get a since token: one timeline event per room is enough, and
// hundreds of member joins in a big room would only slow setup down.
const firstPollFilter = `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true},` +
	`"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}},` +
	`"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}`

// initialSyncFilter is what a typical client (Element) asks for on its first
// sync: lazy-loaded members and the server's default timeline length.
const initialSyncFilter = `{"room":{"state":{"lazy_load_members":true}}}`

// syncPath builds a /sync request. Every sync carries the run's
// set_presence, so that presence is the same for all of a user's syncs.
func (c *client) syncPath(since, filter string, timeout time.Duration) string {
	q := "/_matrix/client/v3/sync?timeout=" + strconv.FormatInt(timeout.Milliseconds(), 10) +
		"&set_presence=" + url.QueryEscape(c.presence)
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	if filter != "" {
		q += "&filter=" + c.escapedFilter(filter)
	}
	return q
}

// escapedFilter is url.QueryEscape(filter), worked out once (newClient)
// for the filter every poll sends.
func (c *client) escapedFilter(filter string) string {
	if filter == pollFilter {
		return c.pollFilterQuery
	}
	return url.QueryEscape(filter)
}

// appendPollPath appends a long-poll's /sync path to dst, as syncPath
// would build it with filterParam the escaped filter (or a filter ID),
// without a string per part.
func (c *client) appendPollPath(dst []byte, since, filterParam string, timeout time.Duration) []byte {
	dst = append(dst, "/_matrix/client/v3/sync?timeout="...)
	dst = strconv.AppendInt(dst, timeout.Milliseconds(), 10)
	dst = append(dst, "&set_presence="...)
	dst = append(dst, c.presenceQuery...)
	if since != "" {
		dst = append(dst, "&since="...)
		dst = appendQueryEscape(dst, since)
	}
	if filterParam != "" {
		dst = append(dst, "&filter="...)
		dst = append(dst, filterParam...)
	}
	return dst
}

// appendQueryEscape appends url.QueryEscape(s), without allocating when s
// needs no escape (sync tokens seldom do).
func appendQueryEscape(dst []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return append(dst, url.QueryEscape(s)...)
		}
	}
	return append(dst, s...)
}

// uploadFilter stores the long-poll filter for u and keeps its ID, which
// u's long-polls then send instead of the filter's JSON, as Element does:
// a shorter request for both sides to write and parse.
func (c *client) uploadFilter(ctx context.Context, u *user) error {
	res, err := c.setupCall(ctx, "POST", "/_matrix/client/v3/user/"+url.PathEscape(u.id)+"/filter", u.token, json.RawMessage(pollFilter))
	if err != nil {
		return fmt.Errorf("upload filter of %s: %w", u.id, err)
	}
	id := res.Get("filter_id").String()
	if id == "" {
		return fmt.Errorf("upload filter of %s: no filter_id in %.200s", u.id, res.Raw)
	}
	u.pollFilterID = url.QueryEscape(id)
	return nil
}

// initialSync runs the first sync of a poller and returns its next_batch, the
// point from which every later message counts.
func (c *client) initialSync(ctx context.Context, u *user) (string, error) {
	body, err := c.do(ctx, c.requests, "GET", c.syncPath("", firstPollFilter, 0), u.token, nil)
	if err != nil {
		return "", fmt.Errorf("initial sync of %s: %w", u.id, err)
	}
	next := gjson.GetBytes(body, "next_batch").String()
	if next == "" {
		return "", fmt.Errorf("initial sync of %s: no next_batch", u.id)
	}
	return next, nil
}

// delivery is one bench message as a sync handed it to one user.
type delivery struct {
	id       uint64
	sent     time.Time
	received time.Time
}

// poller holds one long-poll /sync at a time for one user until its context
// ends, re-issuing it whenever the server answers.
type poller struct {
	c       *client
	u       *user
	since   string
	timeout time.Duration
	deliver func(delivery) // nil when nobody counts messages (idle)
	conn    *pollConn      // the poller's own connection; nil: net/http (an https target)
	errs    *errorLog

	answers *atomic.Int64 // polls answered, shared by all pollers
	started *atomic.Int64 // pollers that have issued their first poll
	limited *atomic.Int64 // room timelines cut short: bench messages may be lost there
}

func (p *poller) run(ctx context.Context) {
	first := true
	var path []byte // the request's path, rebuilt in place for each poll
	for ctx.Err() == nil {
		if first {
			p.started.Add(1)
			first = false
		}
		filter := p.u.pollFilterID
		if filter == "" {
			filter = p.c.pollFilterQuery
		}
		path = p.c.appendPollPath(path[:0], p.since, filter, p.timeout)
		var body []byte
		var err error
		if p.conn != nil {
			body, err = p.conn.poll(ctx, path, p.u.token, time.Now().Add(p.timeout+30*time.Second))
		} else {
			body, err = p.c.do(ctx, p.c.polls, "GET", string(path), p.u.token, nil)
		}
		received := time.Now()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return
			}
			p.errs.add(err)
			sleepCtx(ctx, 100*time.Millisecond) // a failing server must not be hammered
			continue
		}
		p.answers.Add(1)
		next, limited := eachBenchMessage(body, func(id uint64, sentUS int64) {
			if p.deliver != nil {
				p.deliver(delivery{id: id, sent: time.UnixMicro(sentUS), received: received})
			}
		})
		p.limited.Add(int64(limited))
		if next == "" {
			p.errs.add(errors.New("sync answer without next_batch"))
			continue
		}
		p.since = next
	}
	if p.conn != nil {
		p.conn.close()
	}
}

// eachBenchMessage calls fn for every bench message in the joined rooms'
// timelines of a sync answer, and every bench post in its channel section,
// and returns its next_batch and how many of the timelines were limited
// (cut short, so some messages were not delivered).
func eachBenchMessage(body []byte, fn func(id uint64, sentUS int64)) (next string, limited int) {
	res := gjson.ParseBytes(body)
	res.Get(`io\.parley\.channels.posts`).ForEach(func(_, p gjson.Result) bool {
		if id, sent, ok := parseBenchPost(p.Get("text").String()); ok {
			fn(id, sent)
		}
		return true
	})
	res.Get("rooms.join").ForEach(func(_, room gjson.Result) bool {
		if room.Get("timeline.limited").Bool() {
			limited++
		}
		room.Get("timeline.events").ForEach(func(_, ev gjson.Result) bool {
			content := ev.Get("content")
			id, sent := content.Get(contentID), content.Get(contentSentUS)
			if id.Type == gjson.Number && sent.Type == gjson.Number {
				fn(id.Uint(), sent.Int())
			}
			return true
		})
		return true
	})
	return res.Get("next_batch").String(), limited
}

// parseBenchPost reads postBody's text back.
func parseBenchPost(text string) (id uint64, sentUS int64, ok bool) {
	rest, ok := strings.CutPrefix(text, benchPostPrefix)
	if !ok {
		return 0, 0, false
	}
	idText, sentText, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(idText, 10, 64)
	sentUS, err2 := strconv.ParseInt(sentText, 10, 64)
	return id, sentUS, err1 == nil && err2 == nil
}

// sleepCtx waits d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitFor polls cond every few milliseconds until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sleepCtx(ctx, 5*time.Millisecond)
	}
	return nil
}
