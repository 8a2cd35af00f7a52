package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/ratelimit"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storetext"
)

// Pipeline runs the room-DAG checks on one PDU and stores the verdict.
// *rooms/inbound.Pipeline is one.
type Pipeline interface {
	Accept(ctx context.Context, raw []byte) (*checks.Verdict, int64, error)
	AcceptOutlier(ctx context.Context, roomID string, raw []byte) (*checks.Verdict, int64, error)
}

// RoomServers tells whether a server has a joined user in a room, for
// the EDUs (typing, receipts) that only members' servers may send.
type RoomServers interface {
	ServerInRoom(ctx context.Context, roomID, server string) (bool, error)
}

// TxnLog keeps the answers to transactions across restarts, so that a
// transaction retried after one gets its first answer and its EDUs are not
// delivered twice. *storage.Store is one (schema 028).
type TxnLog interface {
	// FederationTxn returns the answer recorded, or an error wrapping
	// storage.ErrNotFound.
	FederationTxn(ctx context.Context, origin, txnID string) ([]byte, error)
	// RecordFederationTxn records answer at ts (ms); a second record of
	// the same transaction keeps the first.
	RecordFederationTxn(ctx context.Context, origin, txnID string, answer []byte, ts int64) error
	// DeleteFederationTxnsBefore deletes up to limit answers older than
	// beforeTS (ms).
	DeleteFederationTxnsBefore(ctx context.Context, beforeTS int64, limit int) (int64, error)
}

// Limits bound what one origin, and all of them, may cost. A zero field
// takes the default named on it.
type Limits struct {
	// MaxBodyBytes bounds a /send body. Zero means 8 MiB: 50 PDUs of the
	// spec's 64 KiB each, plus room for EDUs.
	MaxBodyBytes int64
	// MaxPDUs and MaxEDUs bound the units of one transaction. Zero means
	// the spec's 50 and 100.
	MaxPDUs, MaxEDUs int
	// OriginRate is how many transactions a second one origin may start,
	// with OriginBurst in hand. Zero means 50 a second, burst 100;
	// a negative rate means no limit.
	OriginRate  float64
	OriginBurst int
	// MaxRooms bounds the rooms being processed at once, server-wide.
	// Zero means 8: the checks are CPU-bound and the store has one
	// writer, so more would only queue elsewhere.
	MaxRooms int
	// MissingEvents is the limit sent with get_missing_events. Zero means
	// 20; it is clamped to 10–20, as Synapse asks for 10 and sends 20.
	MissingEvents int
	// MaxFetchedEvents is how many events lacking from the state at a
	// missing prev event are fetched one by one (/event); when more are
	// lacking, the whole state comes in one /state instead. Zero means
	// 10: ten round trips cost about what one /state of a big room does.
	MaxFetchedEvents int
	// TxnCache is how many answered transaction IDs are kept to answer a
	// retry, and TxnTTL how long. Zero means 8192 and one hour.
	TxnCache int
	TxnTTL   time.Duration
	// TxnLogTTL is how long the TxnLog keeps an answer. Zero means a
	// day: a sender retries a failed transaction for hours.
	TxnLogTTL time.Duration
	// ProcessTimeout bounds the work on one transaction. The work goes on
	// when the sender hangs up, so a retry gets the finished answer. Zero
	// means two minutes.
	ProcessTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 8 << 20
	}
	def(&l.MaxPDUs, 50)
	def(&l.MaxEDUs, 100)
	if l.OriginRate == 0 {
		l.OriginRate, l.OriginBurst = 50, max(l.OriginBurst, 100)
	}
	def(&l.OriginBurst, 100)
	def(&l.MaxRooms, 8)
	def(&l.MissingEvents, 20)
	l.MissingEvents = min(max(l.MissingEvents, 10), 20)
	def(&l.MaxFetchedEvents, 10)
	def(&l.TxnCache, 8192)
	if l.TxnTTL <= 0 {
		l.TxnTTL = time.Hour
	}
	if l.TxnLogTTL <= 0 {
		l.TxnLogTTL = 24 * time.Hour
	}
	if l.ProcessTimeout <= 0 {
		l.ProcessTimeout = 2 * time.Minute
	}
	return l
}

// Config is what a Handler needs. Pipeline, Source and Origin are
// required; a nil Fetcher fetches nothing (a PDU with missing events gets
// an error), a nil RoomServers drops typing and receipts, and a nil sink
// drops its kind of EDU.
type Config struct {
	// ServerName is this server's name: to-device messages for other
	// servers' users are dropped.
	ServerName string
	// Origin returns the server that signed the request (the X-Matrix
	// middleware puts it in the request context), false when none did.
	Origin   func(*http.Request) (string, bool)
	Pipeline Pipeline
	// Source reads rooms: their version, current state (for the ACL) and
	// forward extremities. The store's inbound.Source.
	Source      checks.Source
	Fetcher     Fetcher
	RoomServers RoomServers
	// TxnLog, when set, keeps answers across restarts; nil keeps them in
	// memory only.
	TxnLog TxnLog
	// Gaps, when set, takes a prev event whose state the remote gave
	// (see GapFiller); nil means such a gap fails the PDU.
	Gaps  GapFiller
	EDUs  EDUSinks
	Limit Limits
	Log   *slog.Logger

	// OutOfBand, with Keys to verify, takes the kick or ban ending a local
	// user's knock or invite in a room this server is not in (outofband.go);
	// nil leaves such an event to the pipeline, which cannot place it.
	OutOfBand OutOfBand
	Keys      checks.Keys

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves /send. Its fields are static after New, except those
// guarded by mu.
type Handler struct {
	cfg   Config
	lim   Limits
	rate  *ratelimit.Limiter
	slots chan struct{} // one token per room being processed
	log   *slog.Logger
	now   func() time.Time
	txns  *txnCache
	rooms roomLocks
	count counters
	// lastSweep is when rate's idle buckets were last dropped (Unix
	// nanoseconds), so that one origin each is all it keeps.
	lastSweep atomic.Int64
	mu        sync.Mutex
	active    map[string]string // origin -> txnId in flight; guarded by mu
}

// sweepEvery is how often the per-origin rate buckets of idle origins are
// dropped.
const sweepEvery = time.Minute

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	lim := cfg.Limit.withDefaults()
	h := &Handler{
		cfg:    cfg,
		lim:    lim,
		rate:   ratelimit.New(lim.OriginRate, lim.OriginBurst),
		slots:  make(chan struct{}, lim.MaxRooms),
		log:    cfg.Log,
		now:    cfg.Now,
		txns:   newTxnCache(lim.TxnCache, lim.TxnTTL),
		active: map[string]string{},
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// Mount adds the /send route to r.
func (h *Handler) Mount(r chi.Router) {
	r.Put("/_matrix/federation/v1/send/{txnId}", h.ServeSend)
}

// ServeSend is PUT /_matrix/federation/v1/send/{txnId}.
func (h *Handler) ServeSend(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.cfg.Origin(r)
	if !ok || origin == "" {
		apierr.Write(w, apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing or bad X-Matrix authorization"))
		return
	}
	txnID := chi.URLParam(r, "txnId")
	if txnID == "" {
		apierr.Write(w, apierr.MissingParam("Missing transaction ID"))
		return
	}
	if len(txnID) > maxTxnIDBytes || storetext.Check(txnID) != nil {
		h.count.txnRefusedBad.Add(1)
		apierr.Write(w, apierr.InvalidParam("Transaction ID is too long or not storable text"))
		return
	}
	// A retry of a transaction already answered costs nothing: answer it
	// before any limit, so a sender whose first answer was lost is never
	// refused the copy.
	entry, first := h.txns.start(origin, txnID, h.now())
	if !first {
		h.count.txnRetried.Add(1)
		select {
		case <-entry.done:
			if entry.err != nil {
				apierr.Write(w, entry.err)
				return
			}
			writeRaw(w, http.StatusOK, entry.body)
		case <-r.Context().Done():
		}
		return
	}
	status, body, err := h.admitAndRun(r, origin, txnID)
	if err != nil {
		h.txns.abandon(origin, txnID, entry, err)
		apierr.Write(w, err)
		return
	}
	h.txns.finish(entry, body, h.now())
	writeRaw(w, status, body)
}

// admitAndRun applies the per-origin limits, reads and parses the body,
// and processes the transaction. An error means nothing was processed,
// and the sender may send the same transaction again.
func (h *Handler) admitAndRun(r *http.Request, origin, txnID string) (int, []byte, error) {
	now := h.now()
	if last := h.lastSweep.Load(); now.UnixNano()-last > int64(sweepEvery) && h.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		h.sweep(r.Context(), now)
	}
	// One transaction in flight per origin (the spec's sender sends one at
	// a time; a second is a misbehaving or restarted sender). Answer 429,
	// as Synapse does, rather than hold a connection and a goroutine.
	h.mu.Lock()
	if cur, busy := h.active[origin]; busy {
		h.mu.Unlock()
		h.log.Info("federation: refusing a concurrent transaction", "origin", origin, "txn", txnID, "in_flight", cur)
		h.count.txnRefusedBusy.Add(1)
		return 0, nil, apierr.LimitExceeded(1000)
	}
	h.active[origin] = txnID
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.active, origin)
		h.mu.Unlock()
	}()
	// The rate counts only transactions that may run, so a sender
	// refused as concurrent is not also charged for it.
	if ok, wait := h.rate.Allow(origin, now); !ok {
		h.count.txnRefusedRate.Add(1)
		return 0, nil, apierr.LimitExceeded(wait.Milliseconds() + 1)
	}
	if h.cfg.TxnLog != nil {
		answer, err := h.cfg.TxnLog.FederationTxn(r.Context(), origin, txnID)
		switch {
		case err == nil:
			h.count.txnRetried.Add(1)
			return http.StatusOK, answer, nil
		case !errors.Is(err, storage.ErrNotFound):
			// Processing again is safe: PDUs already held answer {}.
			h.log.Warn("federation: reading the transaction log", "origin", origin, "txn", txnID, "err", err)
		}
	}

	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.lim.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		h.count.txnRefusedBad.Add(1)
		if errors.As(err, &tooBig) {
			return 0, nil, apierr.TooLarge("Transaction body is too large")
		}
		return 0, nil, apierr.BadJSON("Could not read the transaction body")
	}
	txn, err := ParseTransaction(body, h.lim.MaxPDUs, h.lim.MaxEDUs)
	if err != nil {
		h.count.txnRefusedBad.Add(1)
		return 0, nil, err
	}
	// The work outlives the request: a sender that timed out retries the
	// same transaction ID and then gets this work's answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.lim.ProcessTimeout)
	defer cancel()
	results := h.Process(ctx, origin, txn)
	out, err := json.Marshal(sendResponse{PDUs: results})
	if err != nil {
		return 0, nil, err
	}
	h.count.txnOK.Add(1)
	if h.cfg.TxnLog != nil {
		// Recorded before the answer goes out: a sender that misses the
		// answer and retries after a restart gets it from here.
		if err := h.cfg.TxnLog.RecordFederationTxn(ctx, origin, txnID, out, h.now().UnixMilli()); err != nil {
			h.log.Warn("federation: recording the transaction", "origin", origin, "txn", txnID, "err", err)
		}
	}
	return http.StatusOK, out, nil
}

// maxTxnIDBytes bounds a transaction ID, which is kept as a key.
const maxTxnIDBytes = 255

// txnLogSweepBatch bounds the answers one sweep deletes from the TxnLog.
const txnLogSweepBatch = 1000

// sweep drops idle origins' rate buckets and old TxnLog answers.
func (h *Handler) sweep(ctx context.Context, now time.Time) {
	h.rate.Sweep(now)
	if h.cfg.TxnLog == nil {
		return
	}
	if _, err := h.cfg.TxnLog.DeleteFederationTxnsBefore(ctx, now.Add(-h.lim.TxnLogTTL).UnixMilli(), txnLogSweepBatch); err != nil {
		h.log.Warn("federation: sweeping the transaction log", "err", err)
	}
}

type sendResponse struct {
	PDUs map[string]PDUResult `json:"pdus"`
}

// PDUResult is one PDU's answer: empty when it was taken (accepted,
// soft-failed, or already held), else what went wrong.
type PDUResult struct {
	Error string `json:"error,omitempty"`
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Process handles a parsed transaction from origin: PDUs per room, EDUs
// beside them (so to-device messages never wait behind a room's
// fetches). It returns each PDU's result by event ID; a PDU whose ID
// cannot be computed (no known room, unparseable) has none, as in
// Synapse.
func (h *Handler) Process(ctx context.Context, origin string, txn *Transaction) map[string]PDUResult {
	var wg sync.WaitGroup
	if len(txn.EDUs) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.handleEDUs(ctx, origin, txn.EDUs)
		}()
	}
	results := h.handlePDUs(ctx, origin, txn.PDUs)
	wg.Wait()
	return results
}
