// Package accounts holds the rules of a user's account beyond login:
// OpenID tokens for third parties, and deactivation. The client API and
// the operator API (issue 16) both call it, so the rules live once here.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/storage"
)

// Errors, wrapped with a reason ("sentinel: reason").
var (
	// ErrUnknownToken: an OpenID token that was never issued or has expired.
	ErrUnknownToken = errors.New("unknown token")
)

// OpenIDTokenLifetime is how long an OpenID token answers userinfo. The
// spec leaves it to the server; an hour is what Synapse gives, long
// enough for an integration manager to check it, short enough to limit a
// leaked token.
const OpenIDTokenLifetime = time.Hour

// MaxOpenIDTokens is how many live OpenID tokens a user keeps: issuing
// another drops the oldest, so a script cannot fill the table within a
// token's lifetime, and a client rarely needs more than one at a time.
const MaxOpenIDTokens = 10

// Store is what the service keeps; *storage.Store implements it.
type Store interface {
	AddOpenIDToken(ctx context.Context, tokenHash, userID string, expiresTS int64) error
	OpenIDTokenUser(ctx context.Context, tokenHash string, nowMs int64) (string, error)
	DeleteExpiredOpenIDTokens(ctx context.Context, nowMs int64, userID string) (int64, error)
	TrimOpenIDTokens(ctx context.Context, userID, keepHash string, keep int) error
}

// Service applies the account rules. Static after New.
type Service struct {
	store Store
	now   func() time.Time
}

// New builds the service.
func New(store Store) *Service {
	return &Service{store: store, now: time.Now}
}

// OpenIDToken is a token a third party can exchange for the user's ID.
type OpenIDToken struct {
	Token     string
	ExpiresIn time.Duration
}

// IssueOpenIDToken issues an OpenID token for userID, stored hashed with
// its expiry. Expired tokens are deleted on the way (an indexed delete),
// so the table holds only live ones.
func (s *Service) IssueOpenIDToken(ctx context.Context, userID string) (OpenIDToken, error) {
	now := s.now()
	if _, err := s.store.DeleteExpiredOpenIDTokens(ctx, now.UnixMilli(), ""); err != nil {
		return OpenIDToken{}, err
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return OpenIDToken{}, fmt.Errorf("openid token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	hash := hashOpenID(tok)
	if err := s.store.AddOpenIDToken(ctx, hash, userID, now.Add(OpenIDTokenLifetime).UnixMilli()); err != nil {
		return OpenIDToken{}, err
	}
	if err := s.store.TrimOpenIDTokens(ctx, userID, hash, MaxOpenIDTokens); err != nil {
		return OpenIDToken{}, err
	}
	return OpenIDToken{Token: tok, ExpiresIn: OpenIDTokenLifetime}, nil
}

// OpenIDUser returns the user an unexpired OpenID token was issued to.
func (s *Service) OpenIDUser(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: access_token is required", ErrUnknownToken)
	}
	user, err := s.store.OpenIDTokenUser(ctx, hashOpenID(token), s.now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: the token is unknown or has expired", ErrUnknownToken)
	}
	return user, err
}

func hashOpenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
