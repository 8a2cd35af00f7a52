package clientapi

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/parley-im/parley/accounts/password"
	"github.com/parley-im/parley/apierr"
)

// busyRetryMs is the retry hint when password hashing is saturated: about
// the time a few hashes take, so a retry usually finds a slot.
const busyRetryMs = 500

// hashErr turns password.ErrBusy (the hashing queue is full) into 429
// M_LIMIT_EXCEEDED, so a login flood gets quick refusals rather than a
// queue of seconds; other errors pass through.
func hashErr(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return apierr.LimitExceeded(busyRetryMs)
	}
	return err
}

// limitFailedLogin takes one token from the target account's failed-login
// bucket before its password is checked, whatever the client address: a
// guesser spread over many addresses still gets a few tries a minute. The
// token is taken first, so concurrent guesses cannot all pass an almost
// empty bucket, and release gives it back unless the attempt was a wrong
// password. Unknown accounts are counted too, so 429 does not reveal which
// accounts exist.
func (a *API) limitFailedLogin(userID string) (release func(err error), err error) {
	l := a.cfg.FailedLoginLimiter
	if l == nil {
		return func(error) {}, nil
	}
	if ok, retry := l.Allow(userID, time.Now()); !ok {
		return nil, apierr.LimitExceeded(retry.Milliseconds() + 1)
	}
	return func(err error) {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
			return // a wrong password: it counts
		}
		l.Refund(userID, time.Now())
	}, nil
}

// limitRegistration takes one token from the client address's registration
// bucket. Loopback clients without X-Forwarded-For (local tools) are not
// limited, as with the per-address request limit.
func (a *API) limitRegistration(r *http.Request) error {
	l := a.cfg.RegisterLimiter
	if l == nil {
		return nil
	}
	key, loopback := limitKey(clientIP(r))
	if loopback {
		return nil
	}
	if ok, retry := l.Allow(key, time.Now()); !ok {
		return apierr.LimitExceeded(retry.Milliseconds() + 1)
	}
	return nil
}

// maxHashesPerAddress is how many password checks one client address may
// have in flight or waiting at once. The hashing queue (passwords.
// max_waiting) is shared by everyone; without a share per address, one
// address flooding logins at its request rate keeps the queue full and
// every other user's login gets 429. Two leaves room for a user retrying
// on a second device.
const maxHashesPerAddress = 2

// hashShares counts password checks in flight per client address key.
type hashShares struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu; keys with no check in flight are absent
}

// take claims a share for r's address, or returns 429 when the address has
// maxHashesPerAddress checks in flight already. Loopback clients without
// X-Forwarded-For (local tools) are not counted, as with the other
// per-address limits. Call the returned func when the check is done.
func (a *API) takeHashShare(r *http.Request) (done func(), err error) {
	key, loopback := limitKey(clientIP(r))
	if loopback {
		return func() {}, nil
	}
	s := &a.hashShares
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[key] >= maxHashesPerAddress {
		return nil, apierr.LimitExceeded(busyRetryMs)
	}
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[key]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.n[key]--; s.n[key] <= 0 {
			delete(s.n, key)
		}
	}, nil
}
