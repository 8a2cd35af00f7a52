// Package envelopes runs red envelopes: an amount a user puts into a room
// for its members to claim, split at random or equally. Money moves only
// through the wallet's ledger (storage/wallet.go): sending debits the
// sender into an escrow account, each claim moves a share from the escrow
// to the claimant in the same transaction that records the claim, and the
// sweeper refunds what is left at expiry. docs/envelopes.md lists the
// invariants and the tests that prove them.
package envelopes

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/parley-im/parley/ratelimit"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/wallet"
)

// Errors the API maps to Matrix errors. Every refusal writes nothing.
var (
	ErrInvalid      = errors.New("envelopes: invalid request")
	ErrNotFound     = errors.New("envelopes: unknown envelope")
	ErrForbidden    = errors.New("envelopes: forbidden")
	ErrEmpty        = errors.New("envelopes: every share is claimed")
	ErrExpired      = errors.New("envelopes: expired")
	ErrInsufficient = errors.New("envelopes: insufficient balance")
	ErrLimited      = errors.New("envelopes: too many envelopes")
)

// Event types.
const (
	EventEnvelope = "io.parley.red_envelope"
	EventClaimed  = "io.parley.red_envelope.claimed"
)

// Defaults for zero Config fields.
const (
	DefaultMaxTotal      = 20000 // 200.00 in a currency with cents
	DefaultMaxCount      = 100
	DefaultPerMinute     = 10
	DefaultExpiry        = 24 * time.Hour
	DefaultSweepInterval = time.Minute
)

// Store is what envelopes needs from storage.
type Store interface {
	CreateEnvelope(ctx context.Context, e storage.RedEnvelope, m storage.Movement) (string, bool, error)
	SetEnvelopeEvent(ctx context.Context, id, eventID string) error
	Envelope(ctx context.Context, id string) (storage.RedEnvelope, []storage.EnvelopeClaim, error)
	EnvelopeHead(ctx context.Context, id string) (storage.RedEnvelope, error)
	ClaimEnvelopes(ctx context.Context, reqs []storage.ClaimRequest, check func(i int, e storage.RedEnvelope) error,
		pick func(e storage.RedEnvelope) int64, out []storage.ClaimResult) error
	ExpiredEnvelopes(ctx context.Context, now int64, limit int) ([]string, error)
	RefundEnvelope(ctx context.Context, id string, now int64) (int64, error)
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
	EnvelopeClaimOf(ctx context.Context, id, userID string) (int64, bool, error)
}

// Config configures the service; zero values take the defaults above.
type Config struct {
	Store     Store
	Rooms     *rooms.Service
	Wallet    *wallet.Service
	Logger    *slog.Logger
	MaxTotal  int64 // largest total of one envelope, minor units
	MaxCount  int   // largest number of shares
	PerMinute int   // envelopes one user may send per minute
	Expiry    time.Duration
	// SweepInterval is how often expired envelopes are looked for.
	SweepInterval time.Duration
	// Seed seeds the split's generator for tests; 0 = crypto/rand.
	Seed uint64
	// ClaimShards is how many claim batches may commit at once, on
	// different envelopes (grouped.go); 0 = DefaultClaimShards.
	ClaimShards int
	now         func() time.Time
}

// Service is the envelopes domain. Safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	limiter *ratelimit.Limiter
	log     *slog.Logger
	// notices carries claim notices to the notifier goroutine (Run).
	notices chan notice
	// group serialises each envelope's claims on one owner goroutine and
	// commits them in batches (grouped.go).
	group *grouper
}

// closedClaim answers a claim on an envelope known to be closed: the
// user's earlier claim, or the refusal.
func (s *Service) closedClaim(ctx context.Context, e storage.RedEnvelope, userID string, nowMs int64) (Claimed, error) {
	amount, ok, err := s.store.EnvelopeClaimOf(ctx, e.ID, userID)
	if err != nil {
		return Claimed{}, err
	}
	if ok {
		return Claimed{Amount: amount, Replayed: true}, nil
	}
	if e.State == "refunded" || e.ExpiresTS <= nowMs {
		return Claimed{}, fmt.Errorf("%w: this envelope expired", ErrExpired)
	}
	return Claimed{}, fmt.Errorf("%w: every share of this envelope is claimed", ErrEmpty)
}

type notice struct {
	envelopeID, roomID, sender, claimant string
	amount                               int64
	seq, count                           int
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = DefaultMaxTotal
	}
	if cfg.MaxTotal > wallet.MaxAmount {
		cfg.MaxTotal = wallet.MaxAmount
	}
	if cfg.MaxCount <= 0 {
		cfg.MaxCount = DefaultMaxCount
	}
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = DefaultPerMinute
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rnd := NewRand(cfg.Seed)
	return &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger,
		limiter: ratelimit.New(float64(cfg.PerMinute)/60, cfg.PerMinute), notices: make(chan notice, 8192),
		group: newGrouper(cfg.Store, rnd, cfg.now, cfg.ClaimShards, 0)}
}

// SendRequest is a new envelope.
type SendRequest struct {
	RoomID, Sender string
	Total          int64
	Count          int
	Kind, Message  string
	// Key is the client's idempotency key; "" for none.
	Key string
}

// Sent is the answer to a send.
type Sent struct {
	EnvelopeID string `json:"envelope_id"`
	EventID    string `json:"event_id"`
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Validate checks a send's amounts against the limits.
func (s *Service) validate(r SendRequest) error {
	switch {
	case r.Kind != KindRandom && r.Kind != KindEqual:
		return fmt.Errorf("%w: kind must be \"random\" or \"equal\"", ErrInvalid)
	case r.Total < 1 || r.Total > s.cfg.MaxTotal:
		return fmt.Errorf("%w: total must be an integer from 1 to %d", ErrInvalid, s.cfg.MaxTotal)
	case r.Count < 1 || r.Count > s.cfg.MaxCount:
		return fmt.Errorf("%w: count must be an integer from 1 to %d", ErrInvalid, s.cfg.MaxCount)
	case int64(r.Count) > r.Total:
		return fmt.Errorf("%w: count must not exceed total: every share is at least one minor unit", ErrInvalid)
	case len(r.Message) > 1000:
		return fmt.Errorf("%w: message must be at most 1000 bytes", ErrInvalid)
	case len(r.Key) > 255:
		return fmt.Errorf("%w: idempotency_key must be at most 255 characters", ErrInvalid)
	}
	return nil
}

// Send debits the sender into a new envelope's escrow and announces it in
// the room. A repeated Key returns the first envelope. The ledger commit
// comes first: if the announcement fails, a retry with the same key sends
// it, and the sweeper refunds an envelope nobody saw.
func (s *Service) Send(ctx context.Context, r SendRequest) (Sent, error) {
	if err := s.validate(r); err != nil {
		return Sent{}, err
	}
	joined, err := s.cfg.Rooms.Joined(ctx, r.RoomID, r.Sender)
	if err != nil {
		return Sent{}, err
	}
	if !joined {
		return Sent{}, fmt.Errorf("%w: you are not a member of this room", ErrForbidden)
	}
	now := s.cfg.now()
	if ok, _ := s.limiter.Allow(r.Sender, now); !ok {
		return Sent{}, fmt.Errorf("%w: at most %d envelopes a minute", ErrLimited, s.cfg.PerMinute)
	}
	ms, err := s.store.RoomMemberships(ctx, r.RoomID)
	if err != nil {
		return Sent{}, err
	}
	members := 0
	for _, m := range ms {
		if m.Membership == "join" {
			members++
		}
	}
	id := newID()
	key := "envelope:" + id
	if r.Key != "" {
		key = "envelope:" + r.Sender + ":" + r.Key
	}
	e := storage.RedEnvelope{ID: id, RoomID: r.RoomID, Sender: r.Sender, Kind: r.Kind, Total: r.Total, Count: r.Count,
		Remaining: r.Total, RemainingCount: r.Count, Message: r.Message, IsDM: members <= 2,
		CreatedTS: now.UnixMilli(), ExpiresTS: now.Add(s.cfg.Expiry).UnixMilli(), State: "open"}
	m := storage.Movement{Key: key, Kind: "envelope_send", TS: e.CreatedTS, Result: id, Postings: []storage.Posting{
		{Account: wallet.UserAccount(r.Sender), Amount: -r.Total, Floor: true}, {Account: "escrow:" + id, Amount: r.Total}}}
	got, replay, err := s.store.CreateEnvelope(ctx, e, m)
	if errors.Is(err, storage.ErrInsufficient) {
		s.limiter.Refund(r.Sender, now)
		return Sent{}, fmt.Errorf("%w: your balance is below %d", ErrInsufficient, r.Total)
	}
	if err != nil {
		return Sent{}, err
	}
	if replay {
		s.limiter.Refund(r.Sender, now)
		if e, err = s.store.EnvelopeHead(ctx, got); err != nil {
			return Sent{}, fmt.Errorf("%w: idempotency_key was used for another movement", ErrInvalid)
		}
		if e.Sender != r.Sender || e.RoomID != r.RoomID {
			return Sent{}, fmt.Errorf("%w: idempotency_key was used for another envelope", ErrInvalid)
		}
	}
	if e.EventID != "" {
		return Sent{EnvelopeID: e.ID, EventID: e.EventID}, nil
	}
	content, _ := json.Marshal(map[string]any{"envelope_id": e.ID, "kind": e.Kind, "total": e.Total, "count": e.Count,
		"message": e.Message, "currency": s.cfg.Wallet.Currency(), "expires_ts": e.ExpiresTS, "body": "🧧 " + e.Message})
	eventID, err := s.cfg.Rooms.Send(ctx, rooms.SendRequest{RoomID: e.RoomID, Sender: e.Sender, TxnID: "red_envelope." + e.ID,
		Type: EventEnvelope, Content: content, ByService: true})
	if err != nil {
		return Sent{}, fmt.Errorf("announce envelope %s: %w", e.ID, err)
	}
	if err := s.store.SetEnvelopeEvent(ctx, e.ID, eventID); err != nil {
		return Sent{}, err
	}
	return Sent{EnvelopeID: e.ID, EventID: eventID}, nil
}

// Claimed is the answer to a claim.
type Claimed struct {
	Amount int64 `json:"amount"`
	// Replayed marks a repeated claim: the first claim's amount, nothing moved.
	Replayed bool `json:"replayed,omitempty"`
}

// Claim takes userID's share of an envelope. A second claim by the same
// user returns the first amount and moves nothing.
func (s *Service) Claim(ctx context.Context, envelopeID, userID string) (Claimed, error) {
	e, err := s.store.EnvelopeHead(ctx, envelopeID)
	if errors.Is(err, storage.ErrNotFound) {
		return Claimed{}, fmt.Errorf("%w: no envelope %q", ErrNotFound, envelopeID)
	}
	if err != nil {
		return Claimed{}, err
	}
	joined, err := s.cfg.Rooms.Joined(ctx, e.RoomID, userID)
	if err != nil {
		return Claimed{}, err
	}
	if !joined {
		// Non-members cannot tell an envelope from a missing one.
		return Claimed{}, fmt.Errorf("%w: no envelope %q", ErrNotFound, envelopeID)
	}
	if e.IsDM && userID == e.Sender {
		return Claimed{}, fmt.Errorf("%w: the sender cannot claim an envelope in a direct chat", ErrForbidden)
	}
	if nowMs := s.cfg.now().UnixMilli(); e.State != "open" || e.RemainingCount < 1 || e.ExpiresTS <= nowMs {
		// Closed already (a snapshot, but states never reopen): answer a
		// retry or refuse from the read pool, without queueing for the
		// write connection. This is most of a storm's requests.
		return s.closedClaim(ctx, e, userID, nowMs)
	}
	res, n, err := s.group.claim(ctx, envelopeID, userID)
	if errors.Is(err, errClosed) {
		e.State = "finished" // or expired: closedClaim tells them apart by time
		return s.closedClaim(ctx, e, userID, s.cfg.now().UnixMilli())
	}
	if err != nil {
		return Claimed{}, err
	}
	if errors.Is(res.Err, storage.ErrNotFound) {
		return Claimed{}, fmt.Errorf("%w: no envelope %q", ErrNotFound, envelopeID)
	}
	if res.Err != nil {
		return Claimed{}, res.Err
	}
	if !res.Replay {
		n.amount = res.Amount
		select {
		case s.notices <- n:
		default: // notices are advisory; the ledger and GET are the truth
			s.log.Warn("envelopes: notice queue full, claim notice dropped", "envelope", envelopeID)
		}
	}
	return Claimed{Amount: res.Amount, Replayed: res.Replay}, nil
}

// ClaimView is one claim in a State.
type ClaimView struct {
	UserID string `json:"user_id"`
	Amount int64  `json:"amount"`
	TS     int64  `json:"ts"`
}

// State is an envelope as GET shows it.
type State struct {
	EnvelopeID     string      `json:"envelope_id"`
	RoomID         string      `json:"room_id"`
	Sender         string      `json:"sender"`
	Kind           string      `json:"kind"`
	Currency       string      `json:"currency"`
	Total          int64       `json:"total"`
	Count          int         `json:"count"`
	Remaining      int64       `json:"remaining"`
	RemainingCount int         `json:"remaining_count"`
	Message        string      `json:"message"`
	State          string      `json:"state"`
	CreatedTS      int64       `json:"created_ts"`
	ExpiresTS      int64       `json:"expires_ts"`
	EventID        string      `json:"event_id,omitempty"`
	Claims         []ClaimView `json:"claims"`
	// BestLuck is the largest share (the earliest among equals), shown
	// once every share is claimed.
	BestLuck *ClaimView `json:"best_luck,omitempty"`
}

// Get shows an envelope to a member of its room or its sender.
func (s *Service) Get(ctx context.Context, envelopeID, userID string) (State, error) {
	e, cs, err := s.store.Envelope(ctx, envelopeID)
	if errors.Is(err, storage.ErrNotFound) {
		return State{}, fmt.Errorf("%w: no envelope %q", ErrNotFound, envelopeID)
	}
	if err != nil {
		return State{}, err
	}
	if userID != e.Sender {
		joined, err := s.cfg.Rooms.Joined(ctx, e.RoomID, userID)
		if err != nil {
			return State{}, err
		}
		if !joined {
			return State{}, fmt.Errorf("%w: no envelope %q", ErrNotFound, envelopeID)
		}
	}
	st := State{EnvelopeID: e.ID, RoomID: e.RoomID, Sender: e.Sender, Kind: e.Kind, Currency: s.cfg.Wallet.Currency(), Total: e.Total,
		Count: e.Count, Remaining: e.Remaining, RemainingCount: e.RemainingCount, Message: e.Message, State: e.State,
		CreatedTS: e.CreatedTS, ExpiresTS: e.ExpiresTS, EventID: e.EventID, Claims: make([]ClaimView, len(cs))}
	if st.State == "open" && e.ExpiresTS <= s.cfg.now().UnixMilli() {
		st.State = "expired" // the sweeper has not refunded it yet
	}
	for i, c := range cs {
		st.Claims[i] = ClaimView{UserID: c.UserID, Amount: c.Amount, TS: c.TS}
		if e.State == "finished" && (st.BestLuck == nil || c.Amount > st.BestLuck.Amount) {
			st.BestLuck = &st.Claims[i]
		}
	}
	return st, nil
}

// Sweep refunds every expired open envelope once and returns how many it
// refunded. Safe to run at any time, as often as wanted, and after any
// crash: RefundEnvelope is conditional and keyed per envelope.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n := 0
	for {
		now := s.cfg.now().UnixMilli()
		ids, err := s.store.ExpiredEnvelopes(ctx, now, 100)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		for _, id := range ids {
			// A claim batch committing on the envelope meanwhile makes
			// the refund's conditional UPDATE miss (ErrRetry, nothing
			// written): read it again.
			_, err := s.store.RefundEnvelope(ctx, id, now)
			for try := 0; errors.Is(err, storage.ErrRetry) && try < 8; try++ {
				_, err = s.store.RefundEnvelope(ctx, id, now)
			}
			if err != nil {
				return n, fmt.Errorf("refund envelope %s: %w", id, err)
			}
			n++
		}
		if len(ids) < 100 {
			return n, nil
		}
	}
}

// Run sweeps expired envelopes (once at start, so a restart catches up)
// and posts claim notices until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runNotices(ctx)
	}()
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("envelopes: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
	}
}

// runNotices posts claim notices. It batches by itself: while one notice
// event is being committed, the claims that arrive queue up, and the next
// round posts one event per envelope for all of them. A quiet room gets
// one event per claim; a storm gets few events with many claims each.
func (s *Service) runNotices(ctx context.Context) {
	for {
		var first notice
		select {
		case <-ctx.Done():
			return
		case first = <-s.notices:
		}
		batch := map[string][]notice{first.envelopeID: {first}}
		order := []string{first.envelopeID}
	drain:
		for len(batch) < 1000 {
			select {
			case n := <-s.notices:
				if _, ok := batch[n.envelopeID]; !ok {
					order = append(order, n.envelopeID)
				}
				batch[n.envelopeID] = append(batch[n.envelopeID], n)
			default:
				break drain
			}
		}
		for _, id := range order {
			ns := batch[id]
			claims := make([]map[string]any, len(ns))
			for i, n := range ns {
				claims[i] = map[string]any{"user_id": n.claimant, "amount": n.amount}
			}
			content, _ := json.Marshal(map[string]any{"envelope_id": id, "claims": claims,
				"body": strconv.Itoa(len(ns)) + " claimed a red envelope"})
			_, err := s.cfg.Rooms.Send(ctx, rooms.SendRequest{RoomID: ns[0].roomID, Sender: ns[0].sender,
				TxnID: "red_envelope_claims." + id + "." + strconv.Itoa(ns[0].seq), Type: EventClaimed, Content: content, ByService: true})
			if err != nil && ctx.Err() == nil {
				s.log.Warn("envelopes: claim notice not posted", "envelope", id, "err", err)
			}
		}
	}
}
