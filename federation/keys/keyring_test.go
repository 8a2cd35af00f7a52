package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// memStore is an in-memory Store and OwnStore.
type memStore struct {
	mu   sync.Mutex
	keys map[string][]storage.RemoteKey
	resp map[string]string
	own  []storage.OwnKey
}

func newMemStore() *memStore {
	return &memStore{keys: map[string][]storage.RemoteKey{}, resp: map[string]string{}}
}

func (m *memStore) PutRemoteKeys(_ context.Context, server string, keys []storage.RemoteKey, response string, _, _ int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[server] = append(m.keys[server], keys...)
	m.resp[server] = response
	return nil
}

func (m *memStore) RemoteKeys(_ context.Context, server string) ([]storage.RemoteKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[server], nil
}

func (m *memStore) RemoteKeyResponse(_ context.Context, server string) (string, int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.resp[server]
	if !ok {
		return "", 0, 0, storage.ErrNotFound
	}
	return r, time.Now().Add(time.Hour).UnixMilli(), 0, nil
}

func (m *memStore) RecordOwnKey(_ context.Context, keyID, pub string, now int64) ([]storage.OwnKey, error) {
	return append([]storage.OwnKey{{KeyID: keyID, PublicKey: pub}}, m.own...), nil
}

func testKey(server, version string, seed byte) *pdu.SigningKey {
	return &pdu.SigningKey{ServerName: server, KeyID: "ed25519:" + version, Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))}
}

func ownFor(t *testing.T, k *pdu.SigningKey, store OwnStore) *Own {
	t.Helper()
	o, err := NewOwn(context.Background(), store, k, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// reparse round-trips a response through JSON so it carries Raw, as one
// read off the wire does.
func reparse(t *testing.T, skr *federation.ServerKeyResponse) *federation.ServerKeyResponse {
	t.Helper()
	raw, err := json.Marshal(skr)
	if err != nil {
		t.Fatal(err)
	}
	var out federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// fakeFetcher serves canned responses and counts calls.
type fakeFetcher struct {
	mu     sync.Mutex
	direct map[string]func() (*federation.ServerKeyResponse, error)
	notary map[string]func(server string) (*federation.QueryKeysResponse, error)
	calls  []string
}

func (f *fakeFetcher) ServerKeys(_ context.Context, server string) (*federation.ServerKeyResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "direct "+server)
	fn := f.direct[server]
	f.mu.Unlock()
	if fn == nil {
		return nil, errors.New("unreachable")
	}
	return fn()
}

func (f *fakeFetcher) QueryKeys(_ context.Context, notary string, req *federation.ReqQueryKeys) (*federation.QueryKeysResponse, error) {
	f.mu.Lock()
	fn := f.notary[notary]
	var server string
	for s := range req.ServerKeys {
		server = s
	}
	f.calls = append(f.calls, "notary "+notary+" "+server)
	f.mu.Unlock()
	if fn == nil {
		return nil, errors.New("unreachable")
	}
	return fn(server)
}

func (f *fakeFetcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func TestKeyringRejectsBadResponses(t *testing.T) {
	ctx := context.Background()
	remote := testKey("remote.example", "r1", 2)
	good := ownFor(t, remote, newMemStore())
	now := time.Now()
	for _, tc := range []struct {
		name string
		resp func() (*federation.ServerKeyResponse, error)
	}{
		{"key swapped after signing", func() (*federation.ServerKeyResponse, error) {
			skr, _ := good.Response(now)
			other := testKey("remote.example", "r1", 3)
			raw, _ := json.Marshal(skr)
			raw = bytes.Replace(raw, []byte(good.SigningKey().Pub), []byte(ownFor(t, other, newMemStore()).SigningKey().Pub), 1)
			var out federation.ServerKeyResponse
			json.Unmarshal(raw, &out)
			return &out, nil
		}},
		{"signed by someone else", func() (*federation.ServerKeyResponse, error) {
			skr, _ := ownFor(t, testKey("evil.example", "r1", 4), newMemStore()).Response(now)
			skr.ServerName = "remote.example"
			return reparse(t, skr), nil
		}},
		{"unsigned", func() (*federation.ServerKeyResponse, error) {
			skr, _ := good.Response(now)
			skr.Signatures = nil
			return reparse(t, skr), nil
		}},
	} {
		f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){"remote.example": tc.resp}}
		ring := New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(), Fetch: f})
		if pub, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", now.UnixMilli(), "11"); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("%s: VerifyKey = %x, %v; want ErrKeyNotFound", tc.name, pub, err)
		}
	}
}

// TestKeyringNotary: a notary answer without a valid notary signature, or
// with a tampered origin response, is refused and the server is asked
// directly; a good one is used without asking the server.
func TestKeyringNotary(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	remote := ownFor(t, testKey("remote.example", "r1", 2), newMemStore())
	notaryKey := testKey("notary.example", "n1", 5)
	notary := ownFor(t, notaryKey, newMemStore())
	remoteResp := func() *federation.ServerKeyResponse { skr, _ := remote.Response(now); return reparse(t, skr) }
	// A notary keyring that holds remote's response, to notarise it.
	notaryStore := newMemStore()
	notaryRing := New(Config{Own: notary, Store: notaryStore, Fetch: &fakeFetcher{}})
	raw, _ := json.Marshal(remoteResp())
	notaryStore.resp["remote.example"] = string(raw)
	signed, err := notaryRing.notarise(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		answer     json.RawMessage
		wantDirect bool
	}{
		{"notarised", signed, false},
		{"not notarised", raw, true},
		{"tampered", bytes.Replace(signed, []byte(`"valid_until_ts":`), []byte(`"valid_until_ts":1`), 1), true},
	} {
		f := &fakeFetcher{
			direct: map[string]func() (*federation.ServerKeyResponse, error){
				"remote.example": func() (*federation.ServerKeyResponse, error) { return remoteResp(), nil },
				"notary.example": func() (*federation.ServerKeyResponse, error) {
					skr, _ := notary.Response(now)
					return reparse(t, skr), nil
				},
			},
			notary: map[string]func(string) (*federation.QueryKeysResponse, error){
				"notary.example": func(string) (*federation.QueryKeysResponse, error) {
					var q federation.QueryKeysResponse
					err := json.Unmarshal([]byte(fmt.Sprintf(`{"server_keys":[%s]}`, tc.answer)), &q)
					return &q, err
				},
			},
		}
		ring := New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(), Fetch: f,
			Notaries: []string{"notary.example"}})
		pub, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", now.UnixMilli(), "11")
		if err != nil || !pub.Equal(testKey("", "", 2).Public()) {
			t.Errorf("%s: VerifyKey = %x, %v; want remote's key", tc.name, pub, err)
		}
		direct, _ := ring.Fetches()
		askedRemote := false
		for _, c := range f.calls {
			askedRemote = askedRemote || c == "direct remote.example"
		}
		if askedRemote != tc.wantDirect {
			t.Errorf("%s: calls %v; asked remote directly = %v, want %v (direct fetches %d)", tc.name, f.calls, askedRemote, tc.wantDirect, direct)
		}
	}
}

// TestKeyringRefetchLimit: a missing key ID triggers one fetch per
// MinRefetch, however many requests name it.
func TestKeyringRefetchLimit(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	remote := ownFor(t, testKey("remote.example", "r1", 2), newMemStore())
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"remote.example": func() (*federation.ServerKeyResponse, error) {
			skr, _ := remote.Response(clock)
			return reparse(t, skr), nil
		},
	}}
	ring := New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(), Fetch: f,
		Now: func() time.Time { return clock }})
	for i := 0; i < 5; i++ {
		if _, err := ring.VerifyKey(ctx, "remote.example", "ed25519:nope", clock.UnixMilli(), ""); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("VerifyKey(unknown key ID) = %v, want ErrKeyNotFound", err)
		}
	}
	if got := f.count(); got != 1 {
		t.Errorf("fetches after 5 lookups of a missing key = %d, want 1", got)
	}
	if _, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", clock.UnixMilli(), ""); err != nil {
		t.Errorf("VerifyKey(known key) = %v", err)
	}
	clock = clock.Add(DefaultMinRefetch + time.Second)
	ring.VerifyKey(ctx, "remote.example", "ed25519:nope", clock.UnixMilli(), "")
	if got := f.count(); got != 2 {
		t.Errorf("fetches after MinRefetch passed = %d, want 2", got)
	}
	// A flood of made-up origins is bounded.
	for i := 0; i < MaxTrackedFetches+10; i++ {
		ring.mayFetch(fmt.Sprintf("s%d.example", i))
	}
	if ring.mayFetch("one-more.example") {
		t.Errorf("mayFetch after %d new servers within MinRefetch = true, want false", MaxTrackedFetches)
	}
	if n := len(ring.lastFetch); n > MaxTrackedFetches {
		t.Errorf("tracked fetches = %d, want at most %d", n, MaxTrackedFetches)
	}
}

// TestKeyringOwnKeys: our own keys, current and retired, need no fetch.
func TestKeyringOwnKeys(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	st := newMemStore()
	old := testKey("me.example", "old", 8)
	st.own = []storage.OwnKey{{KeyID: old.KeyID, PublicKey: ownFor(t, old, newMemStore()).SigningKey().Pub.String(), ExpiredTS: now.UnixMilli()}}
	me := testKey("me.example", "m1", 1)
	f := &fakeFetcher{}
	ring := New(Config{Own: ownFor(t, me, st), Store: newMemStore(), Fetch: f})
	if pub, err := ring.VerifyKey(ctx, "me.example", me.KeyID, now.UnixMilli(), "11"); err != nil || !pub.Equal(me.Public()) {
		t.Errorf("VerifyKey(own current) = %x, %v", pub, err)
	}
	if pub, err := ring.VerifyKey(ctx, "me.example", old.KeyID, now.Add(-time.Hour).UnixMilli(), "11"); err != nil || !pub.Equal(old.Public()) {
		t.Errorf("VerifyKey(own old, before expiry) = %x, %v", pub, err)
	}
	if _, err := ring.VerifyKey(ctx, "me.example", old.KeyID, now.Add(time.Hour).UnixMilli(), "11"); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("VerifyKey(own old, after expiry) = %v, want ErrKeyExpired", err)
	}
	if f.count() != 0 {
		t.Errorf("fetches for own keys = %v, want none", f.calls)
	}
	skr, err := ring.Own().Response(now)
	if err != nil {
		t.Fatal(err)
	}
	if err := reparse(t, skr).VerifySelfSignature(); err != nil || len(skr.OldVerifyKeys) != 1 {
		t.Errorf("own response: self-signature %v, old keys %v; want valid with one old key", err, skr.OldVerifyKeys)
	}
}

// BenchmarkVerifyKeyCached is a key lookup that hits the memory cache: what
// every inbound request and every PDU signature check pays once keys are
// known.
func BenchmarkVerifyKeyCached(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	remote, err := NewOwn(ctx, newMemStore(), testKey("remote.example", "r1", 2), 0, now)
	if err != nil {
		b.Fatal(err)
	}
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"remote.example": func() (*federation.ServerKeyResponse, error) {
			skr, _ := remote.Response(now)
			raw, _ := json.Marshal(skr)
			var out federation.ServerKeyResponse
			return &out, json.Unmarshal(raw, &out)
		},
	}}
	me, _ := NewOwn(ctx, newMemStore(), testKey("me.example", "m1", 1), 0, now)
	ring := New(Config{Own: me, Store: newMemStore(), Fetch: f})
	if _, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", now.UnixMilli(), "11"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", now.UnixMilli(), "11"); err != nil {
			b.Fatal(err)
		}
	}
}

// blockingFetcher never answers until its context ends.
type blockingFetcher struct{ fakeFetcher }

func (*blockingFetcher) ServerKeys(ctx context.Context, _ string) (*federation.ServerKeyResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestKeyringFetchTimeout: a peer that never answers costs at most
// FetchTimeout, and a caller that gives up earlier stops waiting at once.
func TestKeyringFetchTimeout(t *testing.T) {
	ring := New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(),
		Fetch: &blockingFetcher{}, FetchTimeout: 50 * time.Millisecond})
	start := time.Now()
	if _, err := ring.VerifyKey(context.Background(), "slow.example", "ed25519:x", start.UnixMilli(), ""); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("VerifyKey(silent peer) = %v, want ErrKeyNotFound", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("VerifyKey(silent peer) took %v, want about FetchTimeout (50ms)", d)
	}
	ring = New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(),
		Fetch: &blockingFetcher{}, FetchTimeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ring.VerifyKey(ctx, "slow.example", "ed25519:x", start.UnixMilli(), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("VerifyKey(cancelled caller) = %v, want context.Canceled", err)
	}
}

// gatedFetcher answers a direct fetch only once release is closed, and
// closes started when the first fetch begins.
type gatedFetcher struct {
	fakeFetcher
	once             sync.Once
	started, release chan struct{}
}

func (g *gatedFetcher) ServerKeys(ctx context.Context, server string) (*federation.ServerKeyResponse, error) {
	g.once.Do(func() { close(g.started) })
	<-g.release
	return g.fakeFetcher.ServerKeys(ctx, server)
}

// TestKeyringWaitsForFetchInFlight: a lookup that arrives while the first
// fetch of a server's keys is still running waits for it, rather than
// failing because the refetch limit forbids a fetch of its own. Dendrite's
// first transaction to a Parley that is joining one of its rooms arrives
// just then (its presence EDU, while Parley checks the send_join answer),
// and got 401.
func TestKeyringWaitsForFetchInFlight(t *testing.T) {
	ctx := context.Background()
	remote := ownFor(t, testKey("remote.example", "r1", 2), newMemStore())
	g := &gatedFetcher{started: make(chan struct{}), release: make(chan struct{})}
	g.direct = map[string]func() (*federation.ServerKeyResponse, error){
		"remote.example": func() (*federation.ServerKeyResponse, error) {
			skr, _ := remote.Response(time.Now())
			return reparse(t, skr), nil
		},
	}
	ring := New(Config{Own: ownFor(t, testKey("me.example", "m1", 1), newMemStore()), Store: newMemStore(), Fetch: g})
	first := make(chan error, 1)
	go func() {
		_, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", time.Now().UnixMilli(), "")
		first <- err
	}()
	<-g.started
	second := make(chan error, 1)
	go func() {
		_, err := ring.VerifyKey(ctx, "remote.example", "ed25519:r1", time.Now().UnixMilli(), "")
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("VerifyKey during the first fetch = %v before that fetch ended, want it to wait", err)
	case <-time.After(50 * time.Millisecond): // it waits, as it should; a fixed 50 ms only bounds the check
	}
	close(g.release)
	for name, ch := range map[string]chan error{"first": first, "second": second} {
		if err := <-ch; err != nil {
			t.Errorf("%s VerifyKey = %v, want the key", name, err)
		}
	}
	if got := g.count(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}
