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
