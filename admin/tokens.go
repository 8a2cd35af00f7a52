package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"regexp"

	"github.com/parley-im/parley/storage"
)

// RegistrationToken is a token as the API shows it. Zero UsesAllowed and
// ExpiryTime mean unlimited.
type RegistrationToken struct {
	Token       string `json:"token"`
	UsesAllowed int64  `json:"uses_allowed,omitempty"`
	Completed   int64  `json:"completed"`
	ExpiryTime  int64  `json:"expiry_time,omitempty"`
	Valid       bool   `json:"valid"`
}

// tokenRE is the spec's grammar for registration tokens: 1 to 64
// characters from [A-Za-z0-9._~-].
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

// CreateToken stores a registration token; an empty Token gets a random
// one. It returns the token as stored.
func (s *Service) CreateToken(ctx context.Context, actor string, t RegistrationToken) (RegistrationToken, error) {
	if t.Token == "" {
		buf := make([]byte, 12)
		_, _ = rand.Read(buf)
		t.Token = base64.RawURLEncoding.EncodeToString(buf)
	}
	if !tokenRE.MatchString(t.Token) {
		return RegistrationToken{}, fail(ErrInvalidParam, "token must be 1 to 64 characters of A-Z a-z 0-9 . _ ~ -")
	}
	if t.UsesAllowed < 0 {
		return RegistrationToken{}, fail(ErrInvalidParam, "uses_allowed must not be negative")
	}
	now := s.cfg.Now().UnixMilli()
	if t.ExpiryTime != 0 && t.ExpiryTime <= now {
		return RegistrationToken{}, fail(ErrInvalidParam, "expiry_time must be in the future")
	}
	err := s.cfg.Store.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: t.Token, UsesAllowed: t.UsesAllowed, ExpiryTS: t.ExpiryTime})
	if errors.Is(err, storage.ErrConflict) {
		return RegistrationToken{}, fail(ErrExists, "That token already exists")
	}
	if err != nil {
		return RegistrationToken{}, err
	}
	t.Completed, t.Valid = 0, true
	return t, s.audit(ctx, actor, "registration_token.create", t.Token, map[string]any{"uses_allowed": t.UsesAllowed, "expiry_time": t.ExpiryTime})
}

// Tokens lists every registration token.
func (s *Service) Tokens(ctx context.Context) ([]RegistrationToken, error) {
	got, err := s.cfg.Store.RegistrationTokens(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UnixMilli()
	out := make([]RegistrationToken, len(got))
	for i, t := range got {
		out[i] = RegistrationToken{Token: t.Token, UsesAllowed: t.UsesAllowed, Completed: t.Completed, ExpiryTime: t.ExpiryTS,
			Valid: (t.UsesAllowed == 0 || t.Completed < t.UsesAllowed) && (t.ExpiryTS == 0 || t.ExpiryTS >= now)}
	}
	return out, nil
}

// RevokeToken deletes a registration token.
func (s *Service) RevokeToken(ctx context.Context, actor, token string) error {
	err := s.cfg.Store.DeleteRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return fail(ErrNotFound, "Unknown registration token")
	}
	if err != nil {
		return err
	}
	return s.audit(ctx, actor, "registration_token.revoke", token, nil)
}
