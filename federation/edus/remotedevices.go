package edus

import (
	"container/list"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// UserDevices is another server's answer to GET /user/devices/{userId}.
type UserDevices struct {
	StreamID int64 `json:"stream_id"`
	Devices  []struct {
		DeviceID    string          `json:"device_id"`
		DisplayName string          `json:"device_display_name"`
		Keys        json.RawMessage `json:"keys"`
	} `json:"devices"`
	Master      json.RawMessage `json:"master_key"`
	SelfSigning json.RawMessage `json:"self_signing_key"`
}

// Fetcher asks a user's server for their whole device list.
type Fetcher interface {
	UserDevices(ctx context.Context, userID string) (UserDevices, error)
}

// Defaults of RemoteDevices.
const (
	// DefaultMaxRemoteUsers bounds the users whose device lists are
	// cached; the least recently used goes first.
	DefaultMaxRemoteUsers = 10_000
	// maxResyncs bounds the device-list fetches in flight; beyond it a
	// fetch is skipped (the user's next query asks their server).
	maxResyncs = 8
	// resyncTimeout bounds one fetch.
	resyncTimeout = 30 * time.Second
	// maxCachedDevices bounds one user's cached devices: a user with more
	// is not cached (each query asks their server).
	maxCachedDevices = 1000
)

// RemoteDevices caches other servers' users' device lists, for the users
// that share a room with a local user (Tracked), so /keys/query answers
// for them from memory. A user's entry is filled by asking their server
// (GET /user/devices) the first time it is wanted, and kept current by the
// m.device_list_update and m.signing_key_update EDUs their server sends.
// An update whose prev_id does not name the cached stream ID means one was
// missed: the entry is dropped and fetched again, as the spec says.
type RemoteDevices struct {
	// Static after NewRemoteDevices.
	fetch   Fetcher
	tracked func(userID string) bool
	max     int
	log     *slog.Logger
	ctx     context.Context // ends at Close: cuts fetches in flight
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sem     chan struct{} // bounds fetches in flight

	fetches atomic.Int64 // fetches made, for tests and metrics

	mu       sync.Mutex
	entries  map[string]*list.Element // guarded by mu; values *remoteEntry
	lru      *list.List               // guarded by mu; front is most recent
	inflight map[string]uint64        // guarded by mu: users being fetched -> the generation the fetch started at
	gen      map[string]uint64        // guarded by mu: bumped per update of a user being fetched, so a stale answer is dropped
}

type remoteEntry struct {
	user        string
	streamID    int64
	devices     map[string]json.RawMessage // device ID -> device keys (devices with keys only)
	names       map[string]string          // device ID -> display name
	master      json.RawMessage
	selfSigning json.RawMessage
}

// NewRemoteDevices builds the cache. tracked says whether a user shares a
// room with a local user (SharesWithLocal); max zero means
// DefaultMaxRemoteUsers. Close stops its fetches.
func NewRemoteDevices(fetch Fetcher, tracked func(string) bool, max int, log *slog.Logger) *RemoteDevices {
	if max <= 0 {
		max = DefaultMaxRemoteUsers
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &RemoteDevices{fetch: fetch, tracked: tracked, max: max, log: log, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, maxResyncs), entries: map[string]*list.Element{}, lru: list.New(),
		inflight: map[string]uint64{}, gen: map[string]uint64{}}
}

// Close stops the fetches in flight and waits for them.
func (c *RemoteDevices) Close() {
	c.mu.Lock()
	c.cancel() // under mu: resync starts no fetch after this
	c.mu.Unlock()
	c.wg.Wait()
}

// Fetches returns how many device lists were fetched from other servers.
func (c *RemoteDevices) Fetches() int64 { return c.fetches.Load() }

// Len returns how many users are cached.
func (c *RemoteDevices) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Has reports whether userID's device list is cached.
func (c *RemoteDevices) Has(userID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[userID] != nil
}

// Cached returns copies of userID's cached device keys and cross-signing
// keys (e2ekeys.RemoteCache). A user who no longer shares a room with a
// local user is dropped: their server stopped telling us of changes.
func (c *RemoteDevices) Cached(userID string) (devices map[string]json.RawMessage, master, selfSigning json.RawMessage, ok bool) {
	c.mu.Lock()
	el := c.entries[userID]
	c.mu.Unlock()
	if el == nil {
		return nil, nil, nil, false
	}
	if !c.tracked(userID) {
		c.drop(userID)
		return nil, nil, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el = c.entries[userID]; el == nil {
		return nil, nil, nil, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*remoteEntry)
	devices = make(map[string]json.RawMessage, len(e.devices))
	for d, k := range e.devices {
		devices[d] = k
	}
	return devices, e.master, e.selfSigning, true
}

// Missed is told that a query did not find userID cached: a tracked user's
// list is fetched in the background, so the next query finds it.
func (c *RemoteDevices) Missed(userID string) {
	if c.tracked(userID) {
		c.resync(userID)
	}
}

func (c *RemoteDevices) drop(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[userID]; el != nil {
		c.lru.Remove(el)
		delete(c.entries, userID)
	}
}

// resync fetches userID's list in the background, unless a fetch for them
// is in flight or too many are.
func (c *RemoteDevices) resync(userID string) {
	c.mu.Lock()
	if _, busy := c.inflight[userID]; busy || c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.mu.Unlock()
		return // the user's next query or update tries again
	}
	c.inflight[userID] = c.gen[userID]
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, resyncTimeout)
		c.fetches.Add(1)
		got, err := c.fetch.UserDevices(ctx, userID)
		cancel()
		<-c.sem
		c.mu.Lock()
		started := c.inflight[userID]
		delete(c.inflight, userID)
		stale := c.gen[userID] != started
		delete(c.gen, userID)
		if err != nil || stale || len(got.Devices) > maxCachedDevices {
			c.mu.Unlock()
			if err != nil {
				c.log.Info("federation: device list fetch failed", "user", userID, "err", err)
			} else if stale {
				c.resync(userID) // an update arrived meanwhile: the answer may predate it
			}
			return
		}
		defer c.mu.Unlock()
		e := &remoteEntry{user: userID, streamID: got.StreamID, devices: map[string]json.RawMessage{}, names: map[string]string{},
			master: validKey(got.Master, userID), selfSigning: validKey(got.SelfSigning, userID)}
		for _, d := range got.Devices {
			if d.DeviceID == "" {
				continue
			}
			e.names[d.DeviceID] = d.DisplayName
			if k := validDeviceKeys(d.Keys, userID, d.DeviceID); k != nil {
				e.devices[d.DeviceID] = k
			}
		}
		c.putLocked(e)
	}()
}

// putLocked stores e, evicting the least recently used beyond max.
func (c *RemoteDevices) putLocked(e *remoteEntry) {
	if el := c.entries[e.user]; el != nil {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[e.user] = c.lru.PushFront(e)
	for len(c.entries) > c.max {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.entries, last.Value.(*remoteEntry).user)
	}
}

// Update applies an m.device_list_update of userID's (whose server the
// inbound handler checked). An update for a user not cached starts a fetch
// if they are tracked; one that follows the cached stream ID is applied;
// one that is older is ignored; one after a gap drops the entry and
// fetches the list again.
func (c *RemoteDevices) Update(userID, deviceID string, content json.RawMessage) {
	var u struct {
		StreamID    int64           `json:"stream_id"`
		PrevID      []int64         `json:"prev_id"`
		Deleted     bool            `json:"deleted"`
		DisplayName string          `json:"device_display_name"`
		Keys        json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(content, &u) != nil {
		return
	}
	c.mu.Lock()
	if _, busy := c.inflight[userID]; busy {
		c.gen[userID]++ // the fetch in flight may predate this update: it fetches again
		c.mu.Unlock()
		return
	}
	el := c.entries[userID]
	if el == nil {
		c.mu.Unlock()
		c.Missed(userID)
		return
	}
	e := el.Value.(*remoteEntry)
	switch {
	case u.StreamID <= e.streamID:
		c.mu.Unlock()
		return // seen already
	case !slices.Contains(u.PrevID, e.streamID):
		c.lru.Remove(el)
		delete(c.entries, userID)
		c.mu.Unlock()
		c.Missed(userID)
		return
	}
	e.streamID = u.StreamID
	if u.Deleted {
		delete(e.devices, deviceID)
		delete(e.names, deviceID)
	} else {
		if _, known := e.names[deviceID]; !known && len(e.names) >= maxCachedDevices {
			c.lru.Remove(el)
			delete(c.entries, userID)
			c.mu.Unlock()
			return
		}
		e.names[deviceID] = u.DisplayName
		if k := validDeviceKeys(u.Keys, userID, deviceID); k != nil {
			e.devices[deviceID] = k
		} else {
			delete(e.devices, deviceID)
		}
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
}

// SigningKeyUpdate applies an m.signing_key_update to a cached user.
func (c *RemoteDevices) SigningKeyUpdate(userID string, content json.RawMessage) {
	var u struct {
		Master      json.RawMessage `json:"master_key"`
		SelfSigning json.RawMessage `json:"self_signing_key"`
	}
	if json.Unmarshal(content, &u) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, busy := c.inflight[userID]; busy {
		c.gen[userID]++
		return
	}
	el := c.entries[userID]
	if el == nil {
		return
	}
	e := el.Value.(*remoteEntry)
	if k := validKey(u.Master, userID); k != nil {
		e.master = k
	}
	if k := validKey(u.SelfSigning, userID); k != nil {
		e.selfSigning = k
	}
}

// validDeviceKeys returns k when it is a device-keys object naming user
// and device, else nil: a server may only speak for its own devices.
func validDeviceKeys(k json.RawMessage, userID, deviceID string) json.RawMessage {
	if len(k) == 0 || string(k) == "null" {
		return nil
	}
	var head struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	if json.Unmarshal(k, &head) != nil || head.UserID != userID || head.DeviceID != deviceID {
		return nil
	}
	return k
}

// validKey returns a cross-signing key naming userID, else nil.
func validKey(k json.RawMessage, userID string) json.RawMessage {
	if len(k) == 0 || string(k) == "null" {
		return nil
	}
	var head struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(k, &head) != nil || head.UserID != userID {
		return nil
	}
	return k
}
