package inbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnknownPos is a sliding sync pos the server does not hold: from before
// a restart, of an expired or evicted connection, or not one it gave out.
// The client starts the connection again (400 M_UNKNOWN_POS).
var ErrUnknownPos = errors.New("unknown sliding sync position")

// ErrMalformedPos is a pos that is not of the form this server gives out
// (Synapse's "Invalid stream token").
var ErrMalformedPos = errors.New("malformed sliding sync position")

// Sliding sync connections are kept in memory, bounded: a client that
// comes back after its connection was dropped gets M_UNKNOWN_POS and starts
// afresh, which costs it one first response. See docs/reliability.md.
const (
	slidingConnTTL     = 30 * time.Minute // idle time after which a connection is forgotten
	slidingConnsMax    = 20000            // connections kept in all
	slidingConnsPerDev = 10               // conn_ids kept per device
	slidingSentMax     = 1000             // rooms a connection remembers beyond those in view
)

// slidingConns holds every connection's state: the last response's
// snapshot and the one before it, which a client retrying a request whose
// answer it lost still presents.
type slidingConns struct {
	epoch string // random per process: a pos from before a restart is unknown

	mu    sync.Mutex
	seq   uint64                      // guarded by mu; last snapshot number given out
	conns map[slidingKey]*slidingConn // guarded by mu
}

type slidingKey struct{ user, device, conn string }

// slidingConn is one connection. Its fields are guarded by slidingConns.mu;
// the snapshots themselves are immutable once stored.
type slidingConn struct {
	last, prev *slidingSnap
	used       time.Time
}

func newSlidingConns() *slidingConns {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &slidingConns{epoch: hex.EncodeToString(b[:]), conns: map[slidingKey]*slidingConn{}}
}

// lookup returns the snapshot pos names, or nil for pos "" (a new
// connection). Once the client presents the latest pos, the one before it
// is dropped: the client has processed the latest response.
func (c *slidingConns) lookup(k slidingKey, pos string, now time.Time) (*slidingSnap, error) {
	if pos == "" {
		return nil, nil
	}
	epoch, num, ok := strings.Cut(pos, "_")
	id, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || epoch == "" {
		return nil, ErrMalformedPos
	}
	if epoch != c.epoch {
		return nil, ErrUnknownPos
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.conns[k]
	if conn == nil || now.Sub(conn.used) > slidingConnTTL {
		delete(c.conns, k)
		return nil, ErrUnknownPos
	}
	conn.used = now
	switch {
	case conn.last != nil && conn.last.id == id:
		conn.prev = nil
		return conn.last, nil
	case conn.prev != nil && conn.prev.id == id:
		return conn.prev, nil
	}
	return nil, ErrUnknownPos
}

// store keeps next as the connection's latest snapshot, built from base
// (nil for a new connection), and returns its pos.
func (c *slidingConns) store(k slidingKey, base, next *slidingSnap, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	next.id = c.seq
	conn := c.conns[k]
	if conn == nil {
		c.evictLocked(k, now)
		conn = &slidingConn{}
		c.conns[k] = conn
	}
	conn.prev, conn.last, conn.used = base, next, now
	return c.epoch + "_" + strconv.FormatUint(next.id, 10)
}

// evictLocked makes room for a new connection of k's device: expired
// connections go, then the device's least recently used past its share,
// then the least recently used of all past the total. The scans are
// linear, paid only when a connection is created.
func (c *slidingConns) evictLocked(k slidingKey, now time.Time) {
	var devOldest, allOldest *slidingKey
	var devUsed, allUsed time.Time
	dev := 0
	for key, conn := range c.conns {
		if now.Sub(conn.used) > slidingConnTTL {
			delete(c.conns, key)
			continue
		}
		if key.user == k.user && key.device == k.device {
			dev++
			if devOldest == nil || conn.used.Before(devUsed) {
				kk := key
				devOldest, devUsed = &kk, conn.used
			}
		}
		if allOldest == nil || conn.used.Before(allUsed) {
			kk := key
			allOldest, allUsed = &kk, conn.used
		}
	}
	if dev >= slidingConnsPerDev && devOldest != nil {
		delete(c.conns, *devOldest)
		return
	}
	if len(c.conns) >= slidingConnsMax && allOldest != nil {
		delete(c.conns, *allOldest)
	}
}

// count returns how many connections are held (tests, metrics).
func (c *slidingConns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// slidingSnap is what a connection's client has been sent, as of one
// response. It is immutable once stored: the next response copies the maps
// it changes (a few thousand entries at most, one per room sent).
type slidingSnap struct {
	id    uint64
	token Token // the streams' position the response was built at

	rooms   map[string]sentRoom // rooms sent, with what
	invites map[string]int64    // rooms the user is invited to, with the invite's position
	direct  map[string]bool     // rooms named in m.direct account data
	tags    map[string][]string // rooms' m.tag names (slidingfilter.go)
	// attrs is what list filters read of each room's state, read as of
	// attrsPos (slidingfilter.go); nil until a filter needs it.
	attrs     map[string]*slidingAttrs
	attrsPos  int64
	attrsMask uint8  // the state types attrs were read with (attrCreate...)
	lists     string // the lists' counts and windows, to tell a change

	toDeviceNext int64 // the to_device next_batch given out
	toDeviceOwed bool  // that response delivered messages, which the next since deletes
}

// sentRoom is what the client has of one room.
type sentRoom struct {
	pos    int64             // the stream position the room was sent up to
	cfg    SlidingRoomConfig // the room config it was last selected with (read-only)
	cfgKey string            // cfg.key()
	invite bool              // sent as an invite
	// notif and highlight are the counts last sent: a room whose only
	// news is a receipt is sent when they move.
	notif, highlight int64
	// lazy are the member events sent for $LAZY (shared, read-only; nil
	// past lazyMembersMax, which then sends senders' members again).
	lazy map[string]bool
}

// lazyMembersMax bounds the lazy members remembered per room and
// connection.
const lazyMembersMax = 256
