package clientapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// tokenCache keeps resolved access tokens in memory, so an authenticated
// request (every sync) costs no query. Logout removes entries.
//
// Entries are keyed by the raw token, not its SHA-256: every woken
// long-poll authenticates, and hashing there was a measurable part of a
// delivery's CPU (docs/benchmarks.md, "Fan-out: per-delivery CPU (round
// 4)"). The hash is computed only on a miss, for the database lookup. The
// raw tokens held here are the ones clients present on every request; the
// database still stores only hashes.
//
// Two things keep a dead token from living on in the cache. An entry is
// trusted for tokenCacheTTL only, so a device deleted or an account
// deactivated by another process (the parley command) stops working
// within that time. And drops counts dropUser calls: a lookup that began
// before a drop does not cache its (possibly stale) answer, so a request
// racing an admin's deactivation cannot re-insert the token just dropped.
type tokenCache struct {
	mu    sync.RWMutex
	max   int
	ttl   time.Duration
	items map[string]cachedSession // raw token -> session; guarded by mu
	drops uint64                   // dropUser calls so far; guarded by mu
}

// cachedSession is one cache entry. s is shared by every request with the
// token and never changed after put: handlers only read their session.
type cachedSession struct {
	s       *session
	expires time.Time
}

// tokenCacheTTL bounds how long a cached token is trusted without a look
// at the database: one query per active device per minute.
const tokenCacheTTL = time.Minute

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, ttl: tokenCacheTTL, items: map[string]cachedSession{}}
}

// get returns the cached session of token, shared and read-only.
func (c *tokenCache) get(token string) (*session, bool) {
	c.mu.RLock()
	e, ok := c.items[token]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.s, true
}

// generation is the drop count to pass to put: take it before looking the
// token up in the database.
func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.drops
}

// put caches s for token unless a drop happened since gen was taken. s
// must not be changed afterwards.
func (c *tokenCache) put(token string, s *session, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops != gen {
		return // the lookup may predate a logout or deactivation: do not keep it
	}
	if len(c.items) >= c.max {
		for k := range c.items { // drop an arbitrary entry; a miss costs one query
			delete(c.items, k)
			break
		}
	}
	c.items[token] = cachedSession{s: s, expires: time.Now().Add(c.ttl)}
}

// dropUser forgets every cached token of user, or one device when deviceID is set.
func (c *tokenCache) dropUser(userID, deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	for k, e := range c.items {
		if e.s.UserID == userID && (deviceID == "" || e.s.DeviceID == deviceID) {
			delete(c.items, k)
		}
	}
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):])
	}
	return r.URL.Query().Get("access_token")
}

// authenticate resolves the request's access token. The session returned
// may be shared with the token's other requests: callers must not change it.
func (a *API) authenticate(r *http.Request) (*session, error) {
	token := accessToken(r)
	if token == "" {
		return nil, apierr.MissingToken("Missing access token")
	}
	if s, ok := a.tokens.get(token); ok {
		return s, nil
	}
	gen := a.tokens.generation()
	d, err := a.store.DeviceByToken(r.Context(), hashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apierr.UnknownToken("Unknown access token")
	}
	if err != nil {
		return nil, err
	}
	u, err := a.store.GetUser(r.Context(), d.UserID)
	if err != nil {
		return nil, err
	}
	if u.Deactivated {
		return nil, apierr.UnknownToken("This account has been deactivated")
	}
	s := &session{UserID: d.UserID, DeviceID: d.DeviceID, IsAdmin: u.IsAdmin, deviceKey: d.UserID + "|" + d.DeviceID}
	a.tokens.put(token, s, gen)
	now, ip := time.Now().UnixMilli(), clientIP(r)
	if now-d.LastSeenTS >= lastSeenGranularity.Milliseconds() || d.LastSeenIP != ip {
		_ = a.store.TouchDevice(r.Context(), d.UserID, d.DeviceID, now, ip)
	}
	return s, nil
}

// lastSeenGranularity is how stale a device's last_seen_ts may be. A
// cached token is looked up again every tokenCacheTTL; writing last_seen
// on each of those lookups was a write per active device per minute (in a
// 10,000-member room, 10,000 writes a minute on the request path). A new
// address is always written.
const lastSeenGranularity = 5 * time.Minute

// mediaAuth lets the media repository authenticate with our tokens.
func (a *API) mediaAuth(r *http.Request) (string, error) {
	s, err := a.authenticate(r)
	if err != nil {
		return "", err
	}
	if err := a.limitDevice(s); err != nil {
		return "", err
	}
	return s.UserID, nil
}

// checkSharedMedia refuses a message that carries local media its sender
// may not fetch: otherwise anyone who learnt a private room's mxc:// URI
// could post it in a room of their own and read it from there.
func (a *API) checkSharedMedia(ctx context.Context, s *session, content []byte) error {
	if a.media == nil {
		return nil
	}
	for _, id := range rooms.LocalMedia(content, a.cfg.ServerName) {
		uploader, err := a.media.Uploader(id)
		if err == nil {
			err = a.mediaAccess(ctx, s.UserID, id, uploader)
		}
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return apierr.Forbidden("The message carries media you cannot access")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func randomToken(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// newDevice creates (or re-keys) a device and returns its access token.
func (a *API) newDevice(ctx context.Context, userID, deviceID, name, ip string) (string, string, error) {
	dev, token := newDeviceRow(userID, deviceID, name, ip)
	if err := a.store.CreateDevice(ctx, *dev); err != nil {
		return "", "", err
	}
	a.tokens.dropUser(userID, dev.DeviceID)
	return dev.DeviceID, token, nil
}

var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// userIDFor turns a login identifier (localpart or full ID) into a user ID.
func (a *API) userIDFor(user string) (string, error) {
	user = strings.TrimSpace(user)
	if strings.HasPrefix(user, "@") {
		local, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != a.cfg.ServerName {
			return "", apierr.Forbidden("Invalid username or password")
		}
		user = local
	}
	user = strings.ToLower(user)
	if !localpartRE.MatchString(user) {
		return "", apierr.Forbidden("Invalid username or password")
	}
	return "@" + user + ":" + a.cfg.ServerName, nil
}

func (a *API) loginFlows(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, map[string]any{"flows": []map[string]any{{"type": "m.login.password"}}})
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"` // deprecated form
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
}

// login checks a password. An unknown user costs the same hashing work as a
// wrong password, so timing does not reveal which accounts exist.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Type != "m.login.password" {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN", "Unsupported login type "+req.Type)
	}
	name := req.Identifier.User
	if name == "" {
		name = req.User
	}
	if req.Identifier.Type != "" && req.Identifier.Type != "m.id.user" {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN", "Unsupported identifier type")
	}
	if err := devices.Validate(req.DeviceID, req.InitialDeviceDisplayName); err != nil {
		return err
	}
	done, err := a.takeHashShare(r)
	if err != nil {
		return err
	}
	defer done()
	userID, err := a.userIDFor(name)
	if err != nil {
		if err := a.hasher.VerifyDummy(r.Context(), req.Password); err != nil {
			return hashErr(err)
		}
		return err
	}
	if err := a.checkPassword(r.Context(), userID, req.Password); err != nil {
		return err
	}
	deviceID, token, err := a.newDevice(r.Context(), userID, req.DeviceID, req.InitialDeviceDisplayName, clientIP(r))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{
		"user_id": userID, "access_token": token, "device_id": deviceID, "home_server": a.cfg.ServerName,
		"well_known": map[string]any{"m.homeserver": map[string]string{"base_url": a.cfg.PublicBaseURL}},
	})
}

// checkPassword verifies a user's password with constant-cost failure. It
// is the one place passwords are checked (login and the UIA password
// stage), so the per-account failed-login limit applies to both.
func (a *API) checkPassword(ctx context.Context, userID, pw string) error {
	release, err := a.limitFailedLogin(userID)
	if err != nil {
		return err
	}
	err = a.verifyPassword(ctx, userID, pw)
	release(err)
	return hashErr(err)
}

func (a *API) verifyPassword(ctx context.Context, userID, pw string) error {
	u, err := a.store.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (u.Deactivated || u.PasswordHash == "")) {
		if err := a.hasher.VerifyDummy(ctx, pw); err != nil {
			return err
		}
		return apierr.Forbidden("Invalid username or password")
	}
	if err != nil {
		return err
	}
	ok, err := a.hasher.Verify(ctx, u.PasswordHash, pw)
	if err != nil {
		return err
	}
	if !ok {
		return apierr.Forbidden("Invalid username or password")
	}
	return nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.devices.Delete(r.Context(), s.UserID, []string{s.DeviceID}, a.forgetTokens(s.UserID)); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) logoutAll(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.devices.DeleteAll(r.Context(), s.UserID, a.forgetTokens(s.UserID)); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, s *session) error {
	return writeJSON(w, map[string]any{"user_id": s.UserID, "device_id": s.DeviceID, "is_guest": false})
}
