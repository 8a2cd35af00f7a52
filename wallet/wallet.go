// Package wallet is Parley's ledger: user balances in integer minor units
// of one currency, moved only by double-entry transactions whose postings
// sum to zero, each keyed by an idempotency key. The guide and the list of
// invariants (with the tests that prove them) are in docs/envelopes.md.
//
// Storage executes (storage/wallet.go); this package decides what a
// movement is and who may make it.
package wallet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parley-im/parley/storage"
)

// Errors the API maps to Matrix errors.
var (
	ErrInvalid      = errors.New("wallet: invalid request")
	ErrInsufficient = errors.New("wallet: insufficient balance")
)

// MaxAmount bounds any single amount, far below int64's range, so sums of
// many amounts can never overflow.
const MaxAmount = int64(1) << 50

// Store is what the wallet needs from storage.
type Store interface {
	Move(ctx context.Context, m storage.Movement) (string, bool, error)
	Balance(ctx context.Context, account string) (int64, error)
	History(ctx context.Context, account string, beforeTS int64, beforeKey string, limit int) ([]storage.HistoryEntry, error)
}

// Provider is where money enters and leaves the ledger: a payment gateway
// would implement it. Parley ships only AdminProvider, which an operator
// drives through the admin API. A provider names the external account it
// posts against; that account is the only kind allowed below zero.
type Provider interface {
	Name() string
	// Account is the external ledger account mirroring the provider.
	Account() string
}

// AdminProvider is the operator's manual top-up and withdrawal.
type AdminProvider struct{}

func (AdminProvider) Name() string    { return "admin" }
func (AdminProvider) Account() string { return "external:admin" }

// Service is the ledger. Safe for concurrent use; all state is in the store.
type Service struct {
	store    Store
	currency string
	now      func() time.Time
}

// New returns the ledger for one currency (an ISO 4217 code, "" = "CNY").
func New(store Store, currency string) *Service {
	if currency == "" {
		currency = "CNY"
	}
	return &Service{store: store, currency: currency, now: time.Now}
}

// Currency is the deployment's one currency.
func (s *Service) Currency() string { return s.currency }

// UserAccount names a user's account.
func UserAccount(userID string) string { return "user:" + userID }

// ValidAmount checks an amount in minor units.
func ValidAmount(a int64) error {
	if a < 1 || a > MaxAmount {
		return fmt.Errorf("%w: amount must be an integer from 1 to %d minor units", ErrInvalid, MaxAmount)
	}
	return nil
}

func validKey(key string) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("%w: idempotency_key must be 1 to 255 characters", ErrInvalid)
	}
	return nil
}

// Result is a movement's outcome as its first attempt returned it.
type Result struct {
	Key     string `json:"idempotency_key"`
	Amount  int64  `json:"amount"`
	Balance int64  `json:"balance"` // the user's balance when the call returns
	Replay  bool   `json:"replayed"`
}

// TopUp credits a user from the provider. key is scoped to the provider.
func (s *Service) TopUp(ctx context.Context, p Provider, userID string, amount int64, key string) (Result, error) {
	return s.external(ctx, p, userID, amount, key, "top_up")
}

// Withdraw debits a user to the provider; it fails with ErrInsufficient,
// writing nothing, when the balance is short.
func (s *Service) Withdraw(ctx context.Context, p Provider, userID string, amount int64, key string) (Result, error) {
	return s.external(ctx, p, userID, amount, key, "withdraw")
}

func (s *Service) external(ctx context.Context, p Provider, userID string, amount int64, key, kind string) (Result, error) {
	if err := ValidAmount(amount); err != nil {
		return Result{}, err
	}
	if err := validKey(key); err != nil {
		return Result{}, err
	}
	user := storage.Posting{Account: UserAccount(userID), Amount: amount}
	ext := storage.Posting{Account: p.Account(), Amount: -amount}
	if kind == "withdraw" {
		user.Amount, user.Floor, ext.Amount = -amount, true, amount
	}
	m := storage.Movement{Key: p.Name() + ":" + kind + ":" + key, Kind: kind, TS: s.now().UnixMilli(),
		Postings: []storage.Posting{user, ext}, Result: strconv.FormatInt(amount, 10) + " " + userID}
	res, replay, err := s.store.Move(ctx, m)
	if errors.Is(err, storage.ErrInsufficient) {
		return Result{}, fmt.Errorf("%w: the balance is below %d", ErrInsufficient, amount)
	}
	if err != nil {
		return Result{}, fmt.Errorf("wallet %s: %w", kind, err)
	}
	if replay && res != m.Result {
		return Result{}, fmt.Errorf("%w: idempotency_key was used for a different movement", ErrInvalid)
	}
	bal, err := s.store.Balance(ctx, UserAccount(userID))
	if err != nil {
		return Result{}, err
	}
	return Result{Key: key, Amount: amount, Balance: bal, Replay: replay}, nil
}

// Balance is a user's balance.
func (s *Service) Balance(ctx context.Context, userID string) (int64, error) {
	return s.store.Balance(ctx, UserAccount(userID))
}

// Entry is one line of a user's history.
type Entry struct {
	Kind   string `json:"kind"`
	Amount int64  `json:"amount"`
	TS     int64  `json:"ts"`
}

// History returns a page of a user's history, newest first, and the
// cursor of the next page ("" at the end). limit is clamped to 1..100.
func (s *Service) History(ctx context.Context, userID, from string, limit int) ([]Entry, string, error) {
	if limit < 1 || limit > 100 {
		limit = 100
	}
	var ts int64
	var key string
	if from != "" {
		t, k, ok := parseCursor(from)
		if !ok {
			return nil, "", fmt.Errorf("%w: from is not a cursor this server gave", ErrInvalid)
		}
		ts, key = t, k
	}
	hs, err := s.store.History(ctx, UserAccount(userID), ts, key, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]Entry, len(hs))
	for i, h := range hs {
		out[i] = Entry{Kind: h.Kind, Amount: h.Amount, TS: h.TS}
	}
	next := ""
	if len(hs) == limit {
		last := hs[len(hs)-1]
		next = strconv.FormatInt(last.TS, 10) + "_" + last.Key
	}
	return out, next, nil
}

func parseCursor(c string) (int64, string, bool) {
	for i := 0; i < len(c); i++ {
		if c[i] == '_' {
			ts, err := strconv.ParseInt(c[:i], 10, 64)
			if err != nil || ts < 0 || i == len(c)-1 {
				return 0, "", false
			}
			return ts, c[i+1:], true
		}
	}
	return 0, "", false
}
