// Package inbox delivers each user's inbox to every one of their devices:
// it builds /sync responses and wakes long-polls when something that
// concerns the user commits. It owns the in-memory routing tables (room ->
// joined users, user -> rooms), the per-room and per-user positions, typing
// notifications and the presence tracker.
//
// inbox never writes the room logs; it only reads them through storage and
// hears about commits from rooms.
package inbox

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/rooms"
)

const shardCount = 64

// Notifier routes commits to waiting long-polls. A commit wakes exactly the
// users it concerns, once per user however many devices or rooms; nothing
// polls the database on a timer.
type Notifier struct {
	// Static after construction.
	startPos int64 // positions at or below this may predate the in-memory tables
	seed     maphash.Seed

	pos       atomic.Int64 // committed watermark: every position <= pos is committed
	typingPos atomic.Int64
	// typingHook is OnTyping's function; nil when none.
	typingHook atomic.Pointer[func(room, user string, typing bool)]
	// channelNews is the channel feed's HasNews hook (channels.go); nil when
	// channels are off. Called without mu held.
	channelNews atomic.Pointer[func(user string, since int64) bool]
	// momentsNews is the moments feed's HasNews hook (moments.go); nil when
	// moments are off. Called without mu held.
	momentsNews atomic.Pointer[func(user string, since int64) bool]

	mu          sync.RWMutex // guards the routing tables below; taken before any shard lock
	roomMembers map[string]map[string]struct{}
	userRooms   map[string]map[string]struct{}
	roomPos     map[string]int64
	userPos     map[string]int64      // latest stream position that concerns the user
	ownPos      map[string]int64      // latest position of the user's own streams: membership, account data, to-device, notices
	peerPos     map[string]int64      // latest presence or device-list change of the user or a room peer
	userTyping  map[string]int64      // latest typing serial that concerns the user
	receiptPos  map[string]int64      // room -> position of its latest receipt (see withReceiptNews)
	tierPos     map[string]int64      // room -> position of its latest tier change (see tierNews)
	origins     map[string]roomOrigin // room -> creator and creation time, for the tier event (see tierEvent)
	eventPos    map[string]int64      // room -> position of its newest event, receipts aside: sliding sync's order (sliding.go)
	leavePos    map[string]int64      // room -> position of its latest leave, kick or ban (see devicelists.go)
	lastLeave   int64                 // the highest of leavePos: a sync older than none costs one compare

	shards [shardCount]waitShard

	typing *typingTable

	tiers rooms.Tiers // set by SetTiers before serving, then static

	timelines *timelineCache // rooms' newest events, shared by syncs; see timelinecache.go
	deltas    *deltaCache    // rooms' rendered timeline and state, shared by woken members; see delta.go
	unread    *unreadCache   // recent notifying events and members' counts; see unread.go
	members   *memberCache   // current member events for lazy-loading; see membercache.go

	stopOnce sync.Once
	stopped  chan struct{} // closed by Stop: every long-poll answers now
}

type waitShard struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{} // guarded by mu
}

// NewNotifier builds the routing tables from the store.
func NewNotifier(ctx context.Context, store NotifierStore) (*Notifier, error) {
	pos, err := store.MaxPosition(ctx)
	if err != nil {
		return nil, err
	}
	joined, err := store.AllJoined(ctx)
	if err != nil {
		return nil, err
	}
	roomPos, err := store.RoomPositions(ctx)
	if err != nil {
		return nil, err
	}
	n := &Notifier{
		startPos:    pos,
		seed:        maphash.MakeSeed(),
		roomMembers: map[string]map[string]struct{}{},
		userRooms:   map[string]map[string]struct{}{},
		roomPos:     roomPos,
		userPos:     map[string]int64{},
		ownPos:      map[string]int64{},
		peerPos:     map[string]int64{},
		userTyping:  map[string]int64{},
		receiptPos:  map[string]int64{},
		tierPos:     map[string]int64{},
		origins:     map[string]roomOrigin{},
		eventPos:    make(map[string]int64, len(roomPos)),
		leavePos:    map[string]int64{},
	}
	for r, p := range roomPos { // receipts included until the room's next event
		n.eventPos[r] = p
	}
	n.pos.Store(pos)
	for i := range n.shards {
		n.shards[i].waiters = map[string][]chan struct{}{}
	}
	for _, m := range joined {
		n.addMemberLocked(m.RoomID, m.UserID)
	}
	n.typing = newTypingTable()
	n.stopped = make(chan struct{})
	n.tiers = rooms.Tiers{}.WithDefaults()
	n.timelines = newTimelineCache()
	n.deltas = newDeltaCache()
	n.unread = newUnreadCache(pos)
	n.members = newMemberCache()
	return n, nil
}

// Pos returns the committed watermark.
func (n *Notifier) Pos() int64 { return n.pos.Load() }

// TypingPos returns the typing serial.
func (n *Notifier) TypingPos() int64 { return n.typingPos.Load() }

var _ rooms.CommitListener = (*Notifier)(nil)

// Committed updates the routing tables, publishes the new watermark, and
// wakes the users the commit concerns. The writer calls it after commit and
// before acknowledging, in position order.
func (n *Notifier) Committed(c *rooms.Commit) {
	n.mu.Lock()
	for i := range c.Events {
		ev := &c.Events[i]
		n.roomPos[ev.RoomID] = ev.Pos
		n.eventPos[ev.RoomID] = ev.Pos
		if ev.Type == "m.room.redaction" {
			n.timelines.drop(ev.RoomID) // a stored event changed
			n.members.void(ev.RoomID)
			n.deltas.drop(ev.RoomID)
		}
		n.unread.noteEvent(ev)
		if ev.Type == "m.room.member" && ev.StateKey != nil {
			target := *ev.StateKey
			n.members.void(ev.RoomID)
			n.deltas.drop(ev.RoomID)
			before := len(n.roomMembers[ev.RoomID])
			if ev.Membership == "join" {
				n.addMemberLocked(ev.RoomID, target)
			} else {
				n.removeMemberLocked(ev.RoomID, target)
				n.leavePos[ev.RoomID], n.lastLeave = ev.Pos, max(n.lastLeave, ev.Pos)
			}
			n.noteTierLocked(ev.RoomID, before, ev.Pos)
			n.touchUserLocked(target, ev.Pos)
			n.ownPos[target] = ev.Pos
		}
		for u := range n.roomMembers[ev.RoomID] {
			n.touchUserLocked(u, ev.Pos)
		}
	}
	// Membership that changed without an event of this commit saying so:
	// the state a join over federation brings (the room's other members),
	// and what state resolution decides. Without it a remote member who
	// was there before this server joined was missing from the routing
	// tables: their presence and device-list changes woke nobody here.
	for i := range c.State {
		sc := &c.State[i]
		if sc.Type != "m.room.member" {
			continue
		}
		if sc.Membership == "join" {
			n.addMemberLocked(sc.RoomID, sc.StateKey)
		} else {
			n.removeMemberLocked(sc.RoomID, sc.StateKey)
			n.leavePos[sc.RoomID], n.lastLeave = sc.Pos, max(n.lastLeave, sc.Pos)
		}
	}
	for _, room := range c.Purged { // an operator purge deleted stored events
		n.timelines.drop(room)
		n.members.void(room)
		n.unread.voidRoom(room)
		n.deltas.drop(room) // a shared delta may hold purged events
	}
	for _, t := range c.RoomTouches {
		n.roomPos[t.ID] = t.Pos
		n.receiptPos[t.ID] = t.Pos
		if t.User != "" {
			n.unread.forget(t.User, t.ID) // their read position may have moved
		} else {
			n.unread.voidRoom(t.ID) // a change of unknown owner: void the room's counts
		}
		if t.User != "" && n.quietLocked(t.ID) {
			n.touchUserLocked(t.User, t.Pos) // a receipt in a big room: its owner's devices only
			continue
		}
		for u := range n.roomMembers[t.ID] {
			n.touchUserLocked(u, t.Pos)
		}
	}
	for _, t := range c.UserTouches {
		n.touchUserLocked(t.ID, t.Pos)
		n.ownPos[t.ID] = t.Pos
	}
	for _, t := range c.PeerTouches {
		n.touchUserLocked(t.ID, t.Pos)
		n.peerPos[t.ID] = t.Pos
		for room := range n.userRooms[t.ID] {
			if t.Presence && n.quietLocked(room) {
				continue // a big room does not carry its members' presence
			}
			for u := range n.roomMembers[room] {
				n.touchUserLocked(u, t.Pos)
				n.peerPos[u] = t.Pos
			}
		}
	}
	n.pos.Store(c.Pos)
	n.mu.Unlock()
}

// touchUserLocked records news for u and wakes u's waiting requests.
func (n *Notifier) touchUserLocked(u string, pos int64) {
	if n.userPos[u] < pos {
		n.userPos[u] = pos
	}
	n.wake(u)
}

func (n *Notifier) addMemberLocked(room, user string) {
	m := n.roomMembers[room]
	if m == nil {
		m = map[string]struct{}{}
		n.roomMembers[room] = m
	}
	m[user] = struct{}{}
	r := n.userRooms[user]
	if r == nil {
		r = map[string]struct{}{}
		n.userRooms[user] = r
	}
	r[room] = struct{}{}
}

func (n *Notifier) removeMemberLocked(room, user string) {
	delete(n.roomMembers[room], user)
	delete(n.userRooms[user], room)
}

func (n *Notifier) shard(user string) *waitShard {
	return &n.shards[maphash.String(n.seed, user)%shardCount]
}

// wake closes every channel user's requests wait on.
func (n *Notifier) wake(user string) {
	sh := n.shard(user)
	sh.mu.Lock()
	chans := sh.waiters[user]
	if len(chans) > 0 {
		for _, ch := range chans {
			close(ch)
		}
		delete(sh.waiters, user)
	}
	sh.mu.Unlock()
}

// subscribe returns a channel closed at user's next news.
func (n *Notifier) subscribe(user string) chan struct{} {
	ch := make(chan struct{})
	sh := n.shard(user)
	sh.mu.Lock()
	sh.waiters[user] = append(sh.waiters[user], ch)
	sh.mu.Unlock()
	return ch
}

// unsubscribe removes ch if it is still waiting.
func (n *Notifier) unsubscribe(user string, ch chan struct{}) {
	sh := n.shard(user)
	sh.mu.Lock()
	list := sh.waiters[user]
	for i, c := range list {
		if c == ch {
			list[i] = list[len(list)-1]
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(sh.waiters, user)
	} else {
		sh.waiters[user] = list
	}
	sh.mu.Unlock()
}

// StreamNews says which of user's non-room streams may hold news after
// since: own (memberships, account data, notices) and peers (presence and
// device lists of room peers; friends' presence arrives as own news). A
// sync skips the queries of a stream with no news, so a message in a big
// room wakes each member for a few cheap queries, not every stream's.
func (n *Notifier) StreamNews(user string, since int64) (own, peers bool) {
	if since < n.startPos {
		return true, true // older than the tables
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	own = n.ownPos[user] > since
	return own, own || n.peerPos[user] > since
}

// HasNews reports whether anything concerning user happened after the token.
func (n *Notifier) HasNews(user string, since Token) bool {
	if since.Pos < n.startPos || since.toDeviceAcked() < since.Pos {
		return true // older than the tables, or to-device messages still queued
	}
	n.mu.RLock()
	news := n.userPos[user] > since.Pos || n.userTyping[user] > since.Typing
	n.mu.RUnlock()
	if h := n.momentsNews.Load(); !news && h != nil && since.Moments != notCarried && (*h)(user, since.Moments) {
		return true
	}
	if h := n.channelNews.Load(); !news && h != nil && since.Chan != notCarried {
		return (*h)(user, since.Chan)
	}
	return news
}

// Wait blocks until user has news after since, ctx ends, or the returned
// channel of timeout fires. It registers before checking, so a commit between
// the check and the wait is never missed.
func (n *Notifier) Wait(ctx context.Context, user string, since Token, timeout <-chan time.Time) {
	ch := n.subscribe(user)
	if n.HasNews(user, since) {
		n.unsubscribe(user, ch)
		return
	}
	select {
	case <-ch:
	case <-timeout:
		n.unsubscribe(user, ch)
	case <-ctx.Done():
		n.unsubscribe(user, ch)
	case <-n.stopped:
		n.unsubscribe(user, ch)
	}
}

// Stop makes every waiting and future long-poll answer at once, so a
// shutting-down server does not hold clients for their whole timeout.
func (n *Notifier) Stop() { n.stopOnce.Do(func() { close(n.stopped) }) }

// JoinedRooms returns a copy of user's joined rooms with each room's latest
// position, and the watermark they are consistent with: the tables are
// updated and the watermark published under one lock, so the snapshot shows
// exactly the commits up to pos. This is how a sync finds changed rooms
// without asking the database.
func (n *Notifier) JoinedRooms(user string) (rooms map[string]int64, pos int64) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make(map[string]int64, len(n.userRooms[user]))
	for r := range n.userRooms[user] {
		out[r] = n.roomPos[r]
	}
	return out, n.pos.Load()
}

// RoomMembers returns a room's joined local users.
func (n *Notifier) RoomMembers(room string) []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]string, 0, len(n.roomMembers[room]))
	for u := range n.roomMembers[room] {
		out = append(out, u)
	}
	return out
}

// JoinedCount returns how many local users are joined to room.
func (n *Notifier) JoinedCount(room string) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.roomMembers[room])
}
