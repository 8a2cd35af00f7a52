package inbox

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-im/parley/storage"
)

// PresenceWriter persists presence changes (rooms.Service implements it).
// alsoWake are users to wake besides those sharing a room: friends.
type PresenceWriter interface {
	SetPresence(ctx context.Context, p storage.Presence, alsoWake []string) error
}

// PresenceStore reads a user's stored presence (storage.Store implements
// it); the tracker reads it once per user, then keeps the state in memory.
type PresenceStore interface {
	GetPresence(ctx context.Context, userID string) (storage.Presence, error)
}

// Contacts gives a user's friends, who see their presence as room peers do
// (graph.Contacts implements it, from a cache).
type Contacts interface {
	Friends(ctx context.Context, userID string) ([]string, error)
}

// PresenceCoalesce is the shortest time between two presence writes of one
// user. Each write wakes every room peer and friend of the user, so a
// client flipping its presence many times a second wakes each of them at
// most about once a second; the state in memory (GET /presence, and the
// content of the next presence event) is always the newest.
const PresenceCoalesce = time.Second

// Presence states, most active first: a user's presence is the most active
// state of their devices.
const (
	presOnline      = "online"
	presUnavailable = "unavailable"
	presOffline     = "offline"
)

func presenceRank(state string) int {
	switch state {
	case presOnline:
		return 2
	case presUnavailable:
		return 1
	}
	return 0
}

// Presence tracks who is online.
//
// Each device that syncs reports a state (the sync's set_presence); the
// user's state is the most active one of their devices that synced within
// the idle timeout: online > unavailable > offline. A user with an active
// window and an idle tab is therefore online, whatever order the two sync
// in, and neither sync changes anything.
//
// An explicit PUT /presence sets the state for all devices. It holds until
// the devices' derived state changes (a device changes its set_presence, a
// new state appears, a device stops syncing): then the derived state takes
// over. This is Synapse's rule, "explicit set wins until the next
// sync-driven change". A sync that repeats what the devices already said
// does not undo it, so "appear offline" survives an open client.
//
// Only changes of the state or the status message are written (through the
// room writer, so they get stream positions, and each wakes the user's room
// peers and friends), at most once per PresenceCoalesce per user. Activity
// timestamps stay in memory, so a sync does not cost a write and
// last_active_ago alone wakes no one.
type Presence struct {
	// Static after construction.
	store    PresenceStore
	writer   PresenceWriter
	contacts Contacts // nil: no friends beyond room peers
	log      *slog.Logger
	idle     time.Duration // a device that has not synced for this long no longer counts
	window   time.Duration // shortest time between two writes of one user
	kick     chan struct{} // capacity 1: the queue of deferred writes was empty and is not

	// Set by SetServerName before use, then static (remotepresence.go).
	suffix    string // ":" + our server name; "" treats every user as local
	maxRemote int

	mu        sync.Mutex
	remote    map[string]*list.Element  // guarded by mu: remote user -> *remotePresence in remoteLRU
	remoteLRU *list.List                // guarded by mu; front is the most recent
	users     map[string]*presenceState // guarded by mu
	due       []dueWrite                // guarded by mu; deferred writes in the order queued (due times within a window of each other)
}

// dueWrite is a user whose change waits for the coalescing window.
type dueWrite struct {
	user string
	at   time.Time
}

type presenceState struct {
	// Guarded by Presence.mu.
	devices    map[string]deviceState // device ID -> its last sync
	explicit   string                 // set by PUT /presence (or restored from the store); "" when the devices decide
	restored   time.Time              // when explicit was restored from the store; zero once a PUT or a device decides
	statusMsg  string
	lastActive time.Time
	pubState   string    // the state peers were last sent (written)
	pubMsg     string    // the status message peers were last sent
	lastWrite  time.Time // when a write was last tried; the coalescing window runs from it
	pending    bool      // a deferred write is queued in Presence.due

	// writeMu serialises this user's writes, so they commit in the order
	// they were decided and the stored state is the newest. Taken before
	// Presence.mu, never while holding it.
	writeMu sync.Mutex
}

type deviceState struct {
	state    string
	lastSync time.Time
}

// NewPresence builds the tracker. idle zero means 60s; contacts may be nil.
func NewPresence(store PresenceStore, w PresenceWriter, contacts Contacts, log *slog.Logger, idle time.Duration) *Presence {
	if idle <= 0 {
		idle = 60 * time.Second
	}
	return &Presence{store: store, writer: w, contacts: contacts, log: log, idle: idle, window: PresenceCoalesce,
		kick: make(chan struct{}, 1), users: map[string]*presenceState{}}
}

func (p *Presence) load(ctx context.Context, user string) *presenceState {
	p.mu.Lock()
	st := p.users[user]
	p.mu.Unlock()
	if st != nil {
		return st
	}
	st = &presenceState{devices: map[string]deviceState{}, pubState: presOffline}
	if stored, err := p.store.GetPresence(ctx, user); err == nil {
		// What was stored (before a restart) holds, as an explicit state
		// would, until the user's devices say otherwise, or for the idle
		// timeout if none syncs: a user online when the server stopped
		// does not stay online for ever.
		st.pubState, st.pubMsg = stored.State, stored.StatusMsg
		st.statusMsg, st.lastActive = stored.StatusMsg, time.UnixMilli(stored.LastActiveTS)
		if stored.State != presOffline {
			st.explicit, st.restored = stored.State, time.Now()
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		p.log.Warn("load presence", "user", user, "err", err)
	}
	p.mu.Lock()
	if cur := p.users[user]; cur != nil {
		st = cur
	} else {
		p.users[user] = st
	}
	p.mu.Unlock()
	return st
}

// derivedLocked is the most active state of the user's counted devices.
func (st *presenceState) derivedLocked() string {
	best := presOffline
	for _, d := range st.devices {
		if presenceRank(d.state) > presenceRank(best) {
			best = d.state
		}
	}
	return best
}

// stateLocked is the user's state: the explicit one while it holds, else
// the devices'.
func (st *presenceState) stateLocked() string {
	if st.explicit != "" {
		return st.explicit
	}
	return st.derivedLocked()
}

// Synced records a sync by user's device; set is the sync's set_presence
// ("" = online). A device syncing with offline stops counting at once.
func (p *Presence) Synced(ctx context.Context, user, device, set string, now time.Time) {
	if set == "" {
		set = presOnline
	}
	// Every woken long-poll passes here: a known user whose sync changes
	// nothing peers see costs one lock round, not three (load, update,
	// publish's check).
	p.mu.Lock()
	st := p.users[user]
	if st != nil {
		st.syncedLocked(device, set, now)
		quiet := st.pending || (st.stateLocked() == st.pubState && st.statusMsg == st.pubMsg)
		p.mu.Unlock()
		if quiet {
			return
		}
	} else {
		p.mu.Unlock()
		st = p.load(ctx, user)
		p.mu.Lock()
		st.syncedLocked(device, set, now)
		p.mu.Unlock()
	}
	if err := p.publish(ctx, user, st, now); err != nil {
		p.log.Warn("write presence", "user", user, "err", err)
	}
}

// syncedLocked records a sync by device with set_presence set.
func (st *presenceState) syncedLocked(device, set string, now time.Time) {
	before := st.derivedLocked()
	if set == presOffline {
		delete(st.devices, device)
	} else {
		st.devices[device] = deviceState{state: set, lastSync: now}
	}
	if set == presOnline {
		st.lastActive = now
	}
	if st.derivedLocked() != before {
		st.explicit, st.restored = "", time.Time{} // a sync-driven change ends an explicit state
	}
}

// Set is an explicit presence PUT: it sets the state for all the user's
// devices until their sync-driven state changes.
func (p *Presence) Set(ctx context.Context, user, state, msg string, now time.Time) error {
	st := p.load(ctx, user)
	p.mu.Lock()
	st.explicit, st.statusMsg, st.restored = state, msg, time.Time{}
	if state == presOnline {
		st.lastActive = now
	}
	p.mu.Unlock()
	return p.publish(ctx, user, st, now)
}

// publish writes user's state and status message if they differ from what
// peers were last sent. Within the coalescing window of the last write it
// queues one deferred write instead, which Run makes with whatever the
// state is then.
func (p *Presence) publish(ctx context.Context, user string, st *presenceState, now time.Time) error {
	// Fast path, every sync: nothing changed, or a deferred write will
	// carry the change. No write lock, no allocation.
	p.mu.Lock()
	quiet := st.pending || (st.stateLocked() == st.pubState && st.statusMsg == st.pubMsg)
	p.mu.Unlock()
	if quiet {
		return nil
	}

	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	p.mu.Lock()
	state, msg, lastActive := st.stateLocked(), st.statusMsg, st.lastActive
	if st.pending || (state == st.pubState && msg == st.pubMsg) {
		p.mu.Unlock()
		return nil
	}
	if !st.lastWrite.IsZero() && now.Sub(st.lastWrite) < p.window {
		p.deferLocked(user, st, st.lastWrite.Add(p.window))
		p.mu.Unlock()
		return nil
	}
	st.lastWrite = now
	p.mu.Unlock()
	if lastActive.IsZero() {
		lastActive = now // never online since the start: store the change's time
	}
	err := p.writer.SetPresence(ctx, storage.Presence{UserID: user, State: state, StatusMsg: msg, LastActiveTS: lastActive.UnixMilli()},
		p.friends(ctx, user))
	p.mu.Lock()
	if err == nil {
		st.pubState, st.pubMsg = state, msg
	} else {
		p.deferLocked(user, st, now.Add(p.window)) // try again, the state in memory is already the new one
	}
	p.mu.Unlock()
	return err
}

// deferLocked queues one write of user at at.
func (p *Presence) deferLocked(user string, st *presenceState, at time.Time) {
	st.pending = true
	p.due = append(p.due, dueWrite{user: user, at: at})
	if len(p.due) == 1 {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// friends are the users to wake besides room peers. A graph that cannot be
// asked costs friends this one wake-up, not the change itself.
func (p *Presence) friends(ctx context.Context, user string) []string {
	if p.contacts == nil {
		return nil
	}
	fs, err := p.contacts.Friends(ctx, user)
	if err != nil {
		p.log.Warn("presence: friends of user", "user", user, "err", err)
	}
	return fs
}

// Get returns a user's presence and when they were last active.
func (p *Presence) Get(ctx context.Context, user string) (state, msg string, lastActive time.Time, currentlyActive bool) {
	if p.isRemote(user) {
		return p.getRemote(ctx, user) // remotepresence.go
	}
	st := p.load(ctx, user)
	p.mu.Lock()
	defer p.mu.Unlock()
	state = st.stateLocked()
	return state, st.statusMsg, st.lastActive, state == presOnline && time.Since(st.lastActive) < 5*time.Minute
}

// Run drops devices that stopped syncing and makes the deferred writes,
// until ctx ends. Writes still deferred then are dropped: presence is soft
// state, and each client's next sync sets it again.
func (p *Presence) Run(ctx context.Context) {
	tick := time.NewTicker(p.idle / 4)
	defer tick.Stop()
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case now := <-tick.C:
			p.expire(ctx, now)
		case <-p.kick:
		case now := <-timerC:
			p.flushDue(ctx, now)
		}
		p.mu.Lock()
		next, ok := time.Time{}, len(p.due) > 0
		if ok {
			next = p.due[0].at
		}
		p.mu.Unlock()
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if ok {
			timer = time.NewTimer(max(time.Until(next), 0))
			timerC = timer.C
		}
	}
}

// flushDue makes the deferred writes due at now.
func (p *Presence) flushDue(ctx context.Context, now time.Time) {
	p.mu.Lock()
	n := 0
	for n < len(p.due) && !p.due[n].at.After(now) {
		n++
	}
	batch := make([]dueWrite, n)
	copy(batch, p.due[:n])
	p.due = append(p.due[:0], p.due[n:]...)
	for _, d := range batch {
		if st := p.users[d.user]; st != nil {
			st.pending = false
		}
	}
	p.mu.Unlock()
	for _, d := range batch {
		p.mu.Lock()
		st := p.users[d.user]
		p.mu.Unlock()
		if st == nil {
			continue
		}
		if err := p.publish(ctx, d.user, st, now); err != nil {
			p.log.Warn("write presence", "user", d.user, "err", err)
		}
	}
}

// expire stops counting devices that have not synced for the idle timeout,
// and writes the users whose state changed.
func (p *Presence) expire(ctx context.Context, now time.Time) {
	type gone struct {
		user string
		st   *presenceState
	}
	var changed []gone
	p.mu.Lock()
	for u, st := range p.users {
		if len(st.devices) == 0 {
			if !st.restored.IsZero() && now.Sub(st.restored) > p.idle {
				st.explicit, st.restored = "", time.Time{}
				changed = append(changed, gone{u, st})
			}
			continue
		}
		before := st.derivedLocked()
		for d, ds := range st.devices {
			if now.Sub(ds.lastSync) > p.idle {
				delete(st.devices, d)
			}
		}
		if st.derivedLocked() != before {
			st.explicit, st.restored = "", time.Time{}
			changed = append(changed, gone{u, st})
		}
	}
	p.mu.Unlock()
	for _, g := range changed {
		if err := p.publish(ctx, g.user, g.st, now); err != nil {
			p.log.Warn("write presence", "user", g.user, "err", err)
		}
	}
}
