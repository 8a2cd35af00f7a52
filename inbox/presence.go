package inbox

import (
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

// Contacts gives a user's friends, who see their presence as room peers do
// (graph.Contacts implements it, from a cache).
type Contacts interface {
	Friends(ctx context.Context, userID string) ([]string, error)
}

// Presence tracks who is online. Only state changes are written (through
// the room writer, so they get stream positions); activity timestamps stay
// in memory, so a sync does not cost a write.
type Presence struct {
	// Static after construction.
	store    *storage.Store
	writer   PresenceWriter
	contacts Contacts // nil: no friends beyond room peers
	log      *slog.Logger
	idle     time.Duration // no sync for this long: offline

	mu    sync.Mutex
	users map[string]*presenceState // guarded by mu
}

type presenceState struct {
	state      string
	statusMsg  string
	lastActive time.Time
	lastSync   time.Time
	loaded     bool
}

// NewPresence builds the tracker. idle zero means 60s; contacts may be nil.
func NewPresence(store *storage.Store, w PresenceWriter, contacts Contacts, log *slog.Logger, idle time.Duration) *Presence {
	if idle <= 0 {
		idle = 60 * time.Second
	}
	return &Presence{store: store, writer: w, contacts: contacts, log: log, idle: idle, users: map[string]*presenceState{}}
}

func (p *Presence) load(ctx context.Context, user string) *presenceState {
	p.mu.Lock()
	st := p.users[user]
	p.mu.Unlock()
	if st != nil {
		return st
	}
	st = &presenceState{state: "offline", loaded: true}
	if stored, err := p.store.GetPresence(ctx, user); err == nil {
		st.state, st.statusMsg, st.lastActive = stored.State, stored.StatusMsg, time.UnixMilli(stored.LastActiveTS)
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

// Synced records a sync by user; set is the sync's set_presence ("" = online).
func (p *Presence) Synced(ctx context.Context, user, set string, now time.Time) {
	if set == "" {
		set = "online"
	}
	st := p.load(ctx, user)
	p.mu.Lock()
	st.lastSync = now
	if set == "online" {
		st.lastActive = now
	}
	changed := set != "offline" && st.state != set
	msg := st.statusMsg
	if changed {
		st.state = set
	}
	p.mu.Unlock()
	if changed {
		p.write(ctx, user, set, msg, now)
	}
}

// Set is an explicit presence PUT.
func (p *Presence) Set(ctx context.Context, user, state, msg string, now time.Time) error {
	st := p.load(ctx, user)
	p.mu.Lock()
	st.state, st.statusMsg = state, msg
	if state == "online" {
		st.lastActive = now
	}
	p.mu.Unlock()
	return p.writer.SetPresence(ctx, storage.Presence{UserID: user, State: state, StatusMsg: msg, LastActiveTS: now.UnixMilli()}, p.friends(ctx, user))
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
	st := p.load(ctx, user)
	p.mu.Lock()
	defer p.mu.Unlock()
	return st.state, st.statusMsg, st.lastActive, st.state == "online" && time.Since(st.lastActive) < 5*time.Minute
}

func (p *Presence) write(ctx context.Context, user, state, msg string, now time.Time) {
	if err := p.writer.SetPresence(ctx, storage.Presence{UserID: user, State: state, StatusMsg: msg, LastActiveTS: now.UnixMilli()}, p.friends(ctx, user)); err != nil {
		p.log.Warn("write presence", "user", user, "err", err)
	}
}

// Run marks users offline when they stop syncing, until ctx ends.
func (p *Presence) Run(ctx context.Context) {
	tick := time.NewTicker(p.idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var gone []string
			p.mu.Lock()
			for u, st := range p.users {
				if st.state != "offline" && !st.lastSync.IsZero() && now.Sub(st.lastSync) > p.idle {
					st.state = "offline"
					gone = append(gone, u)
				}
			}
			p.mu.Unlock()
			for _, u := range gone {
				p.write(ctx, u, "offline", "", now)
			}
		}
	}
}
