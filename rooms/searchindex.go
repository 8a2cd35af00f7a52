package rooms

import (
	"context"
	"time"
)

// The search index is filled behind the writer rather than inside every
// send's transaction: a send is acknowledged without waiting for its text
// to be indexed, and the index takes many events per transaction, which
// costs FTS5 (SQLite) and the GIN index (PostgreSQL) far less per event
// than one at a time. The writer indexes when it has been idle for
// searchIndexIdle, or at once when searchIndexBacklog events wait. A
// search first asks for the backlog (SearchIndexed), so a user always finds
// what was acknowledged before the search began. The index's watermark is
// stored (schema 045), so a crash loses nothing: the next start indexes from
// it. Redactions and purges run in the writer too, so a pass never races
// them; a pass skips redacted events.

const (
	// searchIndexIdle is how long the writer waits with an empty queue
	// before it indexes: long enough that back-to-back sends never pay for
	// an index commit between them.
	searchIndexIdle = 20 * time.Millisecond
	// searchIndexBacklog is how many waiting events make the writer index
	// between batches even under steady load, bounding the index's lag.
	searchIndexBacklog = 1024
	// searchIndexPass is the most events one pass (one transaction) indexes.
	searchIndexPass = 2048
)

// searchPass is a writer job: it indexes the events after the index's
// watermark, up to the last position assigned.
func (s *Service) searchPass(ctx context.Context, b *batch) error {
	upto := s.pos
	reached, err := b.tx.IndexSearchAfter(ctx, s.searchPos, upto, searchIndexPass)
	if err != nil {
		return &txError{err: err}
	}
	old := s.searchPos
	s.searchPos = reached
	b.onUndo(func() { s.searchPos = old })
	if reached == upto {
		// Every searchable event stored so far, this batch's included, is in.
		b.searchCaughtUp, b.searchableAtPass = true, b.tx.Searchable()
	}
	return nil
}

// afterCommitSearch updates the index's backlog once b committed. It runs
// before the batch's writes are acknowledged, so a search that follows an
// acknowledged send sees searchBehind set.
func (s *Service) afterCommitSearch(b *batch) {
	if b.searchCaughtUp {
		s.searchBacklog = b.tx.Searchable() - b.searchableAtPass
	} else {
		s.searchBacklog += b.tx.Searchable()
	}
	s.searchDone.Store(s.searchPos)
	s.committed.Store(s.pos)
	s.searchBehind.Store(s.searchBacklog > 0)
}

// runSearchPass indexes one pass's worth of the backlog in a transaction of
// its own. A failure is logged and retried at the next idle moment: the
// index is derived data, and nothing acknowledged depends on it.
func (s *Service) runSearchPass() {
	j := &job{apply: s.searchPass, done: make(chan error, 1), cost: 1}
	s.runBatch([]*job{j})
	if err := <-j.done; err != nil {
		s.log.Warn("search index pass failed; retrying later", "err", err)
	}
}

// SearchIndexed returns once every event committed before the call is in
// the search index, or ctx ends. It costs nothing when the index is caught
// up, which it is unless sends arrived in the last searchIndexIdle. It waits
// only for what was committed before it was called: on a busy server the
// backlog never empties, and a search must not chase it.
func (s *Service) SearchIndexed(ctx context.Context) error {
	target := s.committed.Load()
	for s.searchBehind.Load() && s.searchDone.Load() < target {
		if err := s.submit(ctx, "", s.searchPass); err != nil {
			return err
		}
	}
	return nil
}
