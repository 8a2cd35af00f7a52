package inbox

import (
	"container/list"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/parley-im/parley/storage"
)

// Other servers' users' presence (issue 11). Their servers send it in
// m.presence EDUs; the tracker keeps the newest of each in memory, at most
// maxRemote users (the least recently updated or read goes first), and
// writes each change of state or status message through the room writer,
// like a local change, so it gets a stream position and reaches the local
// users who share a room with them through /sync. A user evicted from
// memory is read from the store again when asked for.

// DefaultMaxRemotePresence bounds the remote users whose presence is held
// in memory.
const DefaultMaxRemotePresence = 10_000

// remotePresence is one remote user's presence as their server last sent.
type remotePresence struct {
	user       string
	state, msg string
	lastActive time.Time
	active     bool
}

// SetServerName tells the tracker which users are this server's: the
// others' presence comes only from their servers (Remote), never from a
// sync or a PUT here, and is held in a bounded cache of maxRemote users
// (zero: DefaultMaxRemotePresence). Call it before the tracker is used.
func (p *Presence) SetServerName(name string, maxRemote int) {
	if maxRemote <= 0 {
		maxRemote = DefaultMaxRemotePresence
	}
	p.suffix = ":" + name
	p.maxRemote = maxRemote
	p.remote = map[string]*list.Element{}
	p.remoteLRU = list.New()
}

// isRemote reports whether user belongs to another server.
func (p *Presence) isRemote(user string) bool {
	return p.suffix != "" && !strings.HasSuffix(user, p.suffix)
}

// Remote records a remote user's presence from their server. A change of
// state or status message is written (and wakes the local users who share
// a room with them); a change of activity alone stays in memory.
func (p *Presence) Remote(ctx context.Context, user, state, msg string, lastActive time.Time, active bool) error {
	if !p.isRemote(user) {
		return errors.New("presence: not a remote user")
	}
	p.mu.Lock()
	var prev *remotePresence
	if el := p.remote[user]; el != nil {
		prev = el.Value.(*remotePresence)
		p.remoteLRU.MoveToFront(el)
	}
	cur := &remotePresence{user: user, state: state, msg: msg, lastActive: lastActive, active: active}
	changed := prev == nil || prev.state != state || prev.msg != msg
	if prev != nil {
		*prev = *cur
	} else {
		p.putRemoteLocked(cur)
	}
	p.mu.Unlock()
	if !changed {
		return nil
	}
	if prev == nil { // not in memory: the store may already hold this
		if stored, err := p.store.GetPresence(ctx, user); err == nil && stored.State == state && stored.StatusMsg == msg {
			return nil
		}
	}
	return p.writer.SetPresence(ctx, storage.Presence{UserID: user, State: state, StatusMsg: msg, LastActiveTS: lastActive.UnixMilli()}, nil)
}

// putRemoteLocked adds r, evicting the least recently used beyond
// maxRemote. p.mu must be held.
func (p *Presence) putRemoteLocked(r *remotePresence) {
	p.remote[r.user] = p.remoteLRU.PushFront(r)
	for len(p.remote) > p.maxRemote {
		last := p.remoteLRU.Back()
		p.remoteLRU.Remove(last)
		delete(p.remote, last.Value.(*remotePresence).user)
	}
}

// getRemote is Get for a remote user: from memory, else from the store
// (without keeping it: only their server's updates fill the cache).
func (p *Presence) getRemote(ctx context.Context, user string) (state, msg string, lastActive time.Time, currentlyActive bool) {
	p.mu.Lock()
	if el := p.remote[user]; el != nil {
		r := el.Value.(*remotePresence)
		p.mu.Unlock()
		return r.state, r.msg, r.lastActive, r.active
	}
	p.mu.Unlock()
	stored, err := p.store.GetPresence(ctx, user)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			p.log.Warn("load presence", "user", user, "err", err)
		}
		return presOffline, "", time.Time{}, false
	}
	if stored.LastActiveTS > 0 {
		lastActive = time.UnixMilli(stored.LastActiveTS)
	}
	return stored.State, stored.StatusMsg, lastActive, false
}

// RemoteLen returns how many remote users' presence is held in memory.
func (p *Presence) RemoteLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.remote)
}
