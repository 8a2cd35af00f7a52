package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/storage"
)

// Errors VerifyKey returns; callers (the X-Matrix check, the PDU pipeline)
// map both to "not authorised".
var (
	ErrKeyNotFound = errors.New("keys: no such key")
	ErrKeyExpired  = errors.New("keys: key not valid at that time")
)

// MaxValidity caps how far ahead a fetched key is trusted, for room versions
// 5 and later (the spec's "lesser of valid_until_ts and 7 days"): a server
// that publishes a long validity and then loses its key is trusted for a
// week at most.
const MaxValidity = 7 * 24 * time.Hour

// DefaultMinRefetch is how soon a server's keys may be fetched again when
// a key is missing or expired. It keeps a peer that signs with unknown key
// IDs from turning every request into an outbound fetch.
const DefaultMinRefetch = time.Minute

// MaxTrackedFetches bounds the servers whose last fetch time is kept. Past
// it, new servers are not fetched until older entries age out (MinRefetch):
// requests that name thousands of made-up origins cost bounded memory and
// bounded outbound fetches.
const MaxTrackedFetches = 10_000

// DefaultFetchTimeout bounds a key fetch: inbound requests and PDU checks
// wait on it, and a peer that does not answer in 10 s is better treated as
// unknown (the sender retries) than waited on.
const DefaultFetchTimeout = 10 * time.Second

// Store keeps remote keys; *storage.Store implements it.
type Store interface {
	PutRemoteKeys(ctx context.Context, serverName string, keys []storage.RemoteKey, response string, validUntilTS, fetchedTS int64) error
	RemoteKeys(ctx context.Context, serverName string) ([]storage.RemoteKey, error)
	RemoteKeyResponse(ctx context.Context, serverName string) (response string, validUntilTS, fetchedTS int64, err error)
}

// Fetcher asks other servers for keys; *federation.Client (through
// federation/transport) implements it.
type Fetcher interface {
	ServerKeys(ctx context.Context, serverName string) (*federation.ServerKeyResponse, error)
	QueryKeys(ctx context.Context, serverName string, req *federation.ReqQueryKeys) (*federation.QueryKeysResponse, error)
}

// Config configures a Keyring.
type Config struct {
	Own   *Own
	Store Store
	Fetch Fetcher
	// Notaries are asked first, in order, before the server itself (as
	// Synapse does with trusted_key_servers). Zero value means none: keys
	// are fetched directly.
	Notaries []string
	// MinRefetch: zero value means DefaultMinRefetch.
	MinRefetch time.Duration
	// FetchTimeout bounds one fetch of a server's keys, notaries and
	// direct together. Zero value means DefaultFetchTimeout.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	Now          func() time.Time // zero value means time.Now
}

// Keyring answers "which public key is keyID of server at time T": from
// memory, then the store, then the network. Safe for concurrent use.
type Keyring struct {
	// Static after New.
	cfg Config

	flight singleflight.Group // one fetch per server at a time

	mu        sync.Mutex
	cache     map[string]map[string]cachedKey // server -> key ID -> key; guarded by mu; inner maps are never changed, only replaced
	lastFetch map[string]time.Time            // server -> last fetch attempt; guarded by mu
	inflight  map[string]chan struct{}        // server -> closed when its running fetch ends; guarded by mu

	directFetches, notaryFetches atomic.Int64
}

// New returns a Keyring.
func New(cfg Config) *Keyring {
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultMinRefetch
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Keyring{cfg: cfg, cache: map[string]map[string]cachedKey{}, lastFetch: map[string]time.Time{},
		inflight: map[string]chan struct{}{}}
}

// cachedKey is a stored key with its public key decoded once, so a cache
// hit allocates nothing.
type cachedKey struct {
	storage.RemoteKey
	pub ed25519.PublicKey // nil when the stored key is malformed
}

func newCachedKey(rk storage.RemoteKey) cachedKey {
	pub, _ := decodeKey(rk.PublicKey)
	return cachedKey{RemoteKey: rk, pub: pub}
}

// Own returns this server's key set.
func (k *Keyring) Own() *Own { return k.cfg.Own }

// Fetches reports how many key fetches went to servers directly and to
// notaries, for metrics and tests.
func (k *Keyring) Fetches() (direct, notary int64) {
	return k.directFetches.Load(), k.notaryFetches.Load()
}

// enforcesValidity reports whether roomVersion checks valid_until_ts (room
// versions 5 and later, and "" for request signatures, which are checked
// now). Versions 1 to 4 accept any key the server ever published.
func enforcesValidity(roomVersion string) bool {
	switch roomVersion {
	case "1", "2", "3", "4":
		return false
	}
	return true
}

// usable reports whether key rk may check a signature made at atMs.
func usable(rk storage.RemoteKey, atMs int64, roomVersion string) bool {
	if rk.ExpiredTS != 0 {
		return atMs < rk.ExpiredTS
	}
	if !enforcesValidity(roomVersion) {
		return true
	}
	limit := min(rk.ValidUntilTS, rk.FetchedTS+MaxValidity.Milliseconds())
	return atMs <= limit
}

// VerifyKey returns server's public key keyID, if it may check a signature
// made at atMs (ms since the epoch) in a room of roomVersion ("" for request
// signatures). It reads the cache first and fetches (notaries, then the
// server) only on a miss, at most once per MinRefetch per server.
func (k *Keyring) VerifyKey(ctx context.Context, server, keyID string, atMs int64, roomVersion string) (ed25519.PublicKey, error) {
	return k.verifyKey(ctx, server, keyID, atMs, roomVersion, true)
}

func (k *Keyring) verifyKey(ctx context.Context, server, keyID string, atMs int64, roomVersion string, viaNotary bool) (ed25519.PublicKey, error) {
	if own := k.cfg.Own; own != nil && server == own.ServerName() {
		pub, expired, ok := own.lookup(keyID)
		if !ok {
			return nil, fmt.Errorf("%w: %s %s", ErrKeyNotFound, server, keyID)
		}
		if expired != 0 && atMs >= expired {
			return nil, fmt.Errorf("%w: %s %s", ErrKeyExpired, server, keyID)
		}
		return decodeKey(pub)
	}
	rk, found, err := k.cached(ctx, server, keyID)
	if err != nil {
		return nil, err
	}
	if found && usable(rk.RemoteKey, atMs, roomVersion) {
		return rk.key()
	}
	if k.mayFetch(server) {
		if err := k.fetch(ctx, server, viaNotary); err != nil {
			k.cfg.Logger.Debug("key fetch failed", "server", server, "err", err)
			if !found {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrKeyNotFound, server, keyID, err)
			}
		}
		rk, found, err = k.cached(ctx, server, keyID)
		if err != nil {
			return nil, err
		}
	} else if k.awaitFetch(ctx, server) {
		// The refetch limit forbids a fetch of our own, but one is running
		// (the server's first, most often): its answer is ours too.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rk, found, err = k.cached(ctx, server, keyID)
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !found:
		return nil, fmt.Errorf("%w: %s %s", ErrKeyNotFound, server, keyID)
	case !usable(rk.RemoteKey, atMs, roomVersion):
		return nil, fmt.Errorf("%w: %s %s at %d", ErrKeyExpired, server, keyID, atMs)
	}
	return rk.key()
}

func (c cachedKey) key() (ed25519.PublicKey, error) {
	if c.pub == nil {
		return nil, fmt.Errorf("%w: malformed public key %s", ErrKeyNotFound, c.KeyID)
	}
	return c.pub, nil
}

func decodeKey(b64 string) (ed25519.PublicKey, error) {
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: malformed public key", ErrKeyNotFound)
	}
	return ed25519.PublicKey(raw), nil
}

// cached looks a key up in memory, loading the server's keys from the store
// on first use.
func (k *Keyring) cached(ctx context.Context, server, keyID string) (cachedKey, bool, error) {
	k.mu.Lock()
	keys, loaded := k.cache[server]
	k.mu.Unlock()
	if !loaded {
		rows, err := k.cfg.Store.RemoteKeys(ctx, server)
		if err != nil {
			return cachedKey{}, false, err
		}
		keys = make(map[string]cachedKey, len(rows))
		for _, r := range rows {
			keys[r.KeyID] = newCachedKey(r)
		}
		// Only servers with keys are remembered: requests naming made-up
		// origins must not grow the map.
		if len(keys) > 0 {
			k.mu.Lock()
			if cur, ok := k.cache[server]; ok { // a fetch got there first
				keys = cur
			} else {
				k.cache[server] = keys
			}
			k.mu.Unlock()
		}
	}
	rk, ok := keys[keyID]
	return rk, ok, nil
}

// mayFetch reports whether server's keys may be fetched now, and if so
// records the attempt.
func (k *Keyring) mayFetch(server string) bool {
	now := k.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if last, ok := k.lastFetch[server]; ok && now.Sub(last) < k.cfg.MinRefetch {
		return false
	}
	if len(k.lastFetch) >= MaxTrackedFetches {
		for s, last := range k.lastFetch {
			if now.Sub(last) >= k.cfg.MinRefetch {
				delete(k.lastFetch, s)
			}
		}
		if len(k.lastFetch) >= MaxTrackedFetches {
			return false // a flood of new names: fetch again once it ebbs
		}
	}
	k.lastFetch[server] = now
	return true
}

// markFetching records that a fetch of server's keys runs, for
// awaitFetch, and returns the function that records its end. When two
// fetches of one server overlap (notary and direct), the first one's end
// releases the waiters, which then read whatever the cache holds.
func (k *Keyring) markFetching(server string) (done func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.inflight[server]; ok {
		return func() {}
	}
	ch := make(chan struct{})
	k.inflight[server] = ch
	return func() {
		k.mu.Lock()
		delete(k.inflight, server)
		k.mu.Unlock()
		close(ch)
	}
}

// awaitFetch waits for the running fetch of server's keys, if any, to end
// (or ctx to end) and reports whether there was one. A lookup that the
// refetch limit keeps from fetching would otherwise fail while the very
// fetch that will answer it is under way: a peer's first request, sent
// while we fetch its keys for another reason, got 401.
func (k *Keyring) awaitFetch(ctx context.Context, server string) bool {
	k.mu.Lock()
	ch := k.inflight[server]
	k.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return true
}

// fetch gets server's keys (notaries first, then directly), checks them and
// stores them. Concurrent callers for one server share one fetch, which
// runs under FetchTimeout and not under any one caller's context: a caller
// that gives up stops waiting without failing the others.
func (k *Keyring) fetch(ctx context.Context, server string, viaNotary bool) error {
	key := server
	if !viaNotary {
		key = "direct\x00" + server
	}
	ch := k.flight.DoChan(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.cfg.FetchTimeout)
		defer cancel()
		defer k.markFetching(server)()
		var errs []error
		if viaNotary {
			for _, notary := range k.cfg.Notaries {
				if notary == server {
					continue
				}
				skr, err := k.fetchViaNotary(ctx, notary, server)
				if err == nil {
					return nil, k.save(ctx, server, skr)
				}
				errs = append(errs, fmt.Errorf("notary %s: %w", notary, err))
			}
		}
		skr, err := k.fetchDirect(ctx, server)
		if err == nil {
			return nil, k.save(ctx, server, skr)
		}
		errs = append(errs, fmt.Errorf("direct: %w", err))
		return nil, errors.Join(errs...)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Refresh fetches server's keys now, whatever the cache holds; the notary
// endpoint uses it for a minimum_valid_until_ts the cache cannot meet.
func (k *Keyring) Refresh(ctx context.Context, server string) error {
	if !k.mayFetch(server) {
		return nil
	}
	return k.fetch(ctx, server, true)
}

func (k *Keyring) fetchDirect(ctx context.Context, server string) (*federation.ServerKeyResponse, error) {
	k.directFetches.Add(1)
	skr, err := k.cfg.Fetch.ServerKeys(ctx, server)
	if err != nil {
		return nil, err
	}
	if err := checkResponse(skr, server); err != nil {
		return nil, err
	}
	return skr, nil
}

func (k *Keyring) fetchViaNotary(ctx context.Context, notary, server string) (*federation.ServerKeyResponse, error) {
	k.notaryFetches.Add(1)
	resp, err := k.cfg.Fetch.QueryKeys(ctx, notary, &federation.ReqQueryKeys{
		ServerKeys: map[string]map[id.KeyID]federation.QueryKeysCriteria{server: {}},
	})
	if err != nil {
		return nil, err
	}
	var best *federation.ServerKeyResponse
	var errs []error
	for _, skr := range resp.ServerKeys {
		if skr == nil || skr.ServerName != server {
			continue
		}
		if err := checkResponse(skr, server); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := k.checkNotarySignature(ctx, notary, skr); err != nil {
			errs = append(errs, err)
			continue
		}
		if best == nil || skr.ValidUntilTS.After(best.ValidUntilTS.Time) {
			best = skr
		}
	}
	if best == nil {
		errs = append(errs, fmt.Errorf("no usable keys for %s", server))
		return nil, errors.Join(errs...)
	}
	return best, nil
}

// checkResponse checks a key response's name and self-signatures.
func checkResponse(skr *federation.ServerKeyResponse, server string) error {
	if skr == nil {
		return errors.New("empty key response")
	}
	if skr.ServerName != server {
		return fmt.Errorf("key response names %q, want %q", skr.ServerName, server)
	}
	return skr.VerifySelfSignature()
}

// checkNotarySignature checks that notary signed skr, with a notary key
// fetched directly from the notary.
func (k *Keyring) checkNotarySignature(ctx context.Context, notary string, skr *federation.ServerKeyResponse) error {
	now := k.cfg.Now().UnixMilli()
	for keyID := range skr.Signatures[notary] {
		pub, err := k.verifyKey(ctx, notary, string(keyID), now, "", false)
		if err != nil {
			continue
		}
		b64 := id.SigningKey(base64.RawStdEncoding.EncodeToString(pub))
		if signutil.VerifyJSON(notary, keyID, b64, skr.Raw) == nil {
			return nil
		}
	}
	return fmt.Errorf("no valid signature by notary %s", notary)
}

// save stores a checked response and puts its keys in memory.
func (k *Keyring) save(ctx context.Context, server string, skr *federation.ServerKeyResponse) error {
	now := k.cfg.Now().UnixMilli()
	valid := skr.ValidUntilTS.UnixMilli()
	rows := make([]storage.RemoteKey, 0, len(skr.VerifyKeys)+len(skr.OldVerifyKeys))
	for keyID, vk := range skr.OldVerifyKeys {
		rows = append(rows, storage.RemoteKey{ServerName: server, KeyID: string(keyID), PublicKey: string(vk.Key),
			ValidUntilTS: valid, ExpiredTS: vk.ExpiredTS.UnixMilli(), FetchedTS: now})
	}
	for keyID, vk := range skr.VerifyKeys { // a key in both lists is current
		rows = append(rows, storage.RemoteKey{ServerName: server, KeyID: string(keyID), PublicKey: string(vk.Key),
			ValidUntilTS: valid, FetchedTS: now})
	}
	// The library keeps the decoder's slice; copy before it outlives the call.
	raw := bytes.Clone(skr.Raw)
	if err := k.cfg.Store.PutRemoteKeys(ctx, server, rows, string(raw), valid, now); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := make(map[string]cachedKey, len(k.cache[server])+len(rows))
	for id, c := range k.cache[server] { // readers hold the old map without the lock
		keys[id] = c
	}
	for _, r := range rows {
		keys[r.KeyID] = newCachedKey(r)
	}
	k.cache[server] = keys
	return nil
}
