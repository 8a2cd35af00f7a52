package clientapi

import (
	"context"
	"time"

	"github.com/parley-im/parley/storage"
)

// Backfiller fetches history this server lacks from the other servers in
// a room (federation/backfill.Backfiller). /messages asks it about each
// backwards page before answering.
type Backfiller interface {
	// Fill fetches and stores the history missing before the events of
	// page (newest first), when there is a gap there; it reports whether
	// it stored anything, so the page is read again. It never fails the
	// request: without other servers' help the client gets what is held.
	Fill(ctx context.Context, roomID string, page []storage.Event) bool
}

// maxFillsPerPage bounds the backfills one /messages request waits for:
// each brings up to 100 events, so a page of the maximum size (1,000)
// is filled in one request.
const maxFillsPerPage = 10

// maxFillWait bounds how long one /messages request waits for backfill in
// all. A fetch still running then goes on and stores its page for the
// next request; this one answers with what is held.
const maxFillWait = 15 * time.Second

// filler reads pages of a room's history for one request, filling the
// gaps in them through the Backfiller: /messages in both directions and
// /context share it, so there is one backfill path. Owned by the request's
// goroutine.
type filler struct {
	a      *API
	ctx    context.Context // bounds the request's waits on fills (maxFillWait)
	cancel context.CancelFunc
	fills  int
}

func (a *API) newFiller(ctx context.Context) *filler {
	f := &filler{a: a, ctx: ctx, cancel: func() {}}
	if a.backfill != nil {
		f.ctx, f.cancel = context.WithTimeout(ctx, maxFillWait)
	}
	return f
}

func (f *filler) done() { f.cancel() }

// read reads q's page and, while the backfiller stores history missing
// before one of its events (or before also, an event next to the page),
// reads it again, at most maxFillsPerPage fills in the whole request.
func (f *filler) read(ctx context.Context, roomID string, q storage.TopoQuery, also *storage.Event) ([]storage.Event, error) {
	for {
		page, err := f.a.store.RoomEventsTopo(ctx, q)
		if err != nil {
			return nil, err
		}
		if f.a.backfill == nil || f.fills >= maxFillsPerPage {
			return page, nil
		}
		look := page
		if also != nil {
			look = append([]storage.Event{*also}, page...)
		}
		if !f.a.backfill.Fill(f.ctx, roomID, look) {
			return page, nil
		}
		f.fills++
	}
}
