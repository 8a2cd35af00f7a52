package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"
)

// registerOpen creates an account through the open registration flow of
// the spec: the first POST, without auth, starts a user-interactive auth
// session (401); the second completes its m.login.dummy stage. A server that
// accepts the first call outright is fine too.
func (c *client) registerOpen(ctx context.Context, localpart, password string) (*user, error) {
	body := map[string]any{"username": localpart, "password": password, "initial_device_display_name": "parley-bench"}
	res, err := c.setupCall(ctx, "POST", "/_matrix/client/v3/register", "", body)
	var se *statusError
	switch {
	case err == nil:
		return loggedIn(localpart, res)
	case !errors.As(err, &se) || se.Status != http.StatusUnauthorized:
		return nil, fmt.Errorf("register %s: %w", localpart, err)
	}
	session := gjson.Get(se.Body, "session").String()
	if session == "" {
		return nil, fmt.Errorf("register %s: 401 without a UIA session: %w", localpart, err)
	}
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": session}
	res, err = c.setupCall(ctx, "POST", "/_matrix/client/v3/register", "", body)
	if err != nil {
		return nil, fmt.Errorf("register %s (m.login.dummy): %w", localpart, err)
	}
	return loggedIn(localpart, res)
}

// registerShared creates an account through Synapse's shared-secret admin
// registration, which works whatever the server's registration mode: GET a
// nonce, then POST the account with an HMAC-SHA1 over
// nonce NUL user NUL password NUL "notadmin", keyed by the shared secret.
func (c *client) registerShared(ctx context.Context, secret, localpart, password string) (*user, error) {
	const path = "/_synapse/admin/v1/register"
	res, err := c.setupCall(ctx, "GET", path, "", nil)
	if err != nil {
		return nil, fmt.Errorf("register %s: get nonce: %w", localpart, err)
	}
	nonce := res.Get("nonce").String()
	if nonce == "" {
		return nil, fmt.Errorf("register %s: no nonce in %.200s", localpart, res.Raw)
	}
	body := map[string]any{
		"nonce": nonce, "username": localpart, "password": password, "admin": false,
		"mac": sharedSecretMAC(secret, nonce, localpart, password, false),
	}
	res, err = c.setupCall(ctx, "POST", path, "", body)
	if err != nil {
		return nil, fmt.Errorf("register %s (shared secret): %w", localpart, err)
	}
	return loggedIn(localpart, res)
}

func sharedSecretMAC(secret, nonce, localpart, password string, admin bool) string {
	mac := hmac.New(sha1.New, []byte(secret))
	role := "notadmin"
	if admin {
		role = "admin"
	}
	for i, part := range []string{nonce, localpart, password, role} {
		if i > 0 {
			mac.Write([]byte{0})
		}
		mac.Write([]byte(part))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

func loggedIn(localpart string, res gjson.Result) (*user, error) {
	u := &user{localpart: localpart, id: res.Get("user_id").String(), token: res.Get("access_token").String()}
	if u.id == "" || u.token == "" {
		return nil, fmt.Errorf("register %s: no user_id or access_token in %.200s", localpart, res.Raw)
	}
	return u, nil
}

// registerUsers creates n users named <prefix>-<role><i>, with bounded
// concurrency and a progress bar: registration hashes a password, so
// thousands of users take a while on any server.
func (b *bench) registerUsers(ctx context.Context, role string, n int) ([]*user, error) {
	users := make([]*user, n)
	password := "pw-" + b.opt.UserPrefix
	err := b.parallel(ctx, "register "+role, n, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("%s-%s%d", b.opt.UserPrefix, role, i)
		var u *user
		var err error
		if b.opt.SharedSecret != "" {
			u, err = b.c.registerShared(ctx, b.opt.SharedSecret, name, password)
		} else {
			u, err = b.c.registerOpen(ctx, name, password)
		}
		users[i] = u
		return err
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}
