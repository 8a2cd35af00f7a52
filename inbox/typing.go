package inbox

import (
	"context"
	"sort"
	"sync"
	"time"
)

// typingTable holds who is typing where. Typing is ephemeral: it lives only
// in memory and has its own serial in the sync token.
type typingTable struct {
	mu         sync.Mutex
	rooms      map[string]map[string]time.Time // room -> user -> expiry; guarded by mu
	roomSerial map[string]int64                // room -> serial of its last change; guarded by mu
}

func newTypingTable() *typingTable {
	return &typingTable{rooms: map[string]map[string]time.Time{}, roomSerial: map[string]int64{}}
}

// SetTyping starts or stops user typing in room and wakes the room's members.
func (n *Notifier) SetTyping(room, user string, typing bool, timeout time.Duration, now time.Time) {
	t := n.typing
	t.mu.Lock()
	users := t.rooms[room]
	_, was := users[user]
	if typing {
		if users == nil {
			users = map[string]time.Time{}
			t.rooms[room] = users
		}
		users[user] = now.Add(timeout)
	} else {
		delete(users, user)
	}
	changed := typing != was
	var serial int64
	if changed {
		serial = n.typingPos.Add(1)
		t.roomSerial[room] = serial
	}
	t.mu.Unlock()
	if changed {
		n.typingChanged(room, user, serial)
	}
	if hook := n.typingHook.Load(); hook != nil {
		(*hook)(room, user, typing)
	}
}

// OnTyping sets a function called after every SetTyping, changed or not
// (a refresh keeps other servers' copy alive): federation sends local
// users' typing to the room's other servers with it. It must not block.
func (n *Notifier) OnTyping(hook func(room, user string, typing bool)) {
	n.typingHook.Store(&hook)
}

// typingChanged wakes the members who see user's typing in room: everyone
// in a small room, only user's own devices above it (rooms/tiers.go).
func (n *Notifier) typingChanged(room, user string, serial int64) {
	n.mu.Lock()
	if n.quietLocked(room) {
		if n.userTyping[user] < serial {
			n.userTyping[user] = serial
		}
		n.wake(user)
		n.mu.Unlock()
		return
	}
	for u := range n.roomMembers[room] {
		if n.userTyping[u] < serial {
			n.userTyping[u] = serial
		}
		n.wake(u)
	}
	n.mu.Unlock()
}

// expireTyping drops typing entries past their timeout.
func (n *Notifier) expireTyping(now time.Time) {
	t := n.typing
	var changed, who []string
	t.mu.Lock()
	for room, users := range t.rooms {
		for u, exp := range users {
			if now.After(exp) {
				delete(users, u)
				changed = append(changed, room)
				who = append(who, u)
			}
		}
		if len(users) == 0 {
			delete(t.rooms, room)
		}
	}
	serials := make([]int64, len(changed))
	for i, room := range changed {
		serials[i] = n.typingPos.Add(1)
		t.roomSerial[room] = serials[i]
	}
	t.mu.Unlock()
	for i, room := range changed {
		n.typingChanged(room, who[i], serials[i])
	}
}

// RunTypingExpiry expires typing notifications every second until ctx ends.
func (n *Notifier) RunTypingExpiry(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.expireTyping(now)
		}
	}
}

// TypingIn returns, for each room whose typing changed after since, the users
// typing now (sorted) as viewer sees them: in a room above the small tier,
// only viewer themself.
func (n *Notifier) TypingIn(viewer string, rooms []string, since int64) map[string][]string {
	var quiet map[string]bool // nil, allocating nothing, unless a room is big
	n.mu.RLock()
	// Above the small tier a room's typing serial moves for everyone's
	// typing, but only viewer's own concerns viewer: without news of their
	// own, such a room is left out rather than sent as an empty list.
	ownNews := n.userTyping[viewer] > since
	for _, room := range rooms {
		if n.quietLocked(room) {
			if quiet == nil {
				quiet = map[string]bool{}
			}
			quiet[room] = true
		}
	}
	n.mu.RUnlock()
	t := n.typing
	t.mu.Lock()
	defer t.mu.Unlock()
	var out map[string][]string
	for _, room := range rooms {
		if t.roomSerial[room] <= since || (quiet[room] && !ownNews) {
			continue
		}
		users := make([]string, 0, len(t.rooms[room]))
		for u := range t.rooms[room] {
			if !quiet[room] || u == viewer {
				users = append(users, u)
			}
		}
		sort.Strings(users)
		if out == nil {
			out = map[string][]string{}
		}
		out[room] = users
	}
	return out
}
