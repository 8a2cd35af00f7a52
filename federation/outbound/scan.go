package outbound

import (
	"context"
	"slices"
	"time"

	"github.com/parley-im/parley/storage"
)

// The scanner follows the room logs behind the writer. For each member
// event of a remote user it decides whether the user's server gained its
// first joined user in the room (its span opens) or lost its last (its span
// closes), and records that in fed_room_servers before any worker reads
// past it. For each event our users sent it wakes the room's remote
// servers' workers.
//
// It reads the store, not the commit notice, so one code path serves both
// the live case and the catch-up after a restart. Its cost is one indexed
// range read of event metadata (no bodies) per wake-up, off the writer.

const (
	scanPage = 1000 // events read per query
	// scanPersistEvery bounds how often a scan position with no span change
	// is written: replaying a few seconds of log after a crash is cheap and
	// idempotent, an extra fsync per commit would slow the writer.
	scanPersistEvery = 5 * time.Second
	// maxJoinCounts bounds the scanner's cache of joined-user counts; when
	// full it starts over (counts are reloaded from the log on demand).
	maxJoinCounts = 100_000
)

func (q *Queue) scanLoop() {
	defer q.wg.Done()
	persisted := q.scanned.Load()
	lastPersist := q.cfg.Now()
	tick := time.NewTicker(scanPersistEvery)
	defer tick.Stop()
	for {
		select {
		case <-q.ctx.Done():
			if pos := q.scanned.Load(); pos > persisted {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = q.store.FedApplyScan(ctx, nil, pos) // best effort: a replay is harmless
				cancel()
			}
			return
		case <-q.scanWake:
		case <-tick.C:
			// Commits made before the queue was registered as a listener
			// (or while its notice was lost) are found here.
			if pos, err := q.store.MaxPosition(q.ctx); err == nil {
				q.raiseLatest(pos)
			}
		}
		if err := q.scan(q.ctx, &persisted); err != nil {
			if q.ctx.Err() == nil {
				q.log.Warn("federation outbound: scan failed; retrying on the next commit", "err", err)
			}
			continue
		}
		if pos := q.scanned.Load(); pos > persisted && q.cfg.Now().Sub(lastPersist) >= scanPersistEvery {
			if err := q.store.FedApplyScan(q.ctx, nil, pos); err == nil {
				persisted, lastPersist = pos, q.cfg.Now()
			}
		}
	}
}

// scan reads the log from the scan position to the writer's latest, a page
// at a time.
func (q *Queue) scan(ctx context.Context, persisted *int64) error {
	for {
		from, upto := q.scanned.Load(), q.latest.Load()
		if from >= upto {
			return nil
		}
		evs, err := q.store.FedEventsAfter(ctx, from, upto, scanPage)
		if err != nil {
			return err
		}
		end := upto
		if len(evs) == scanPage {
			end = evs[len(evs)-1].Pos
		}
		changes, wake, err := q.follow(ctx, evs)
		if err == nil && len(changes) > 0 {
			// Durable before any worker may read past them.
			err = q.store.FedApplyScan(ctx, changes, end)
		}
		if err != nil {
			// The memory ran ahead of the store: forget it, and read the
			// page again on the next try.
			clear(q.joinCounts)
			q.reloadRooms(ctx)
			return err
		}
		if len(changes) > 0 {
			*persisted = end
		}
		q.scanned.Store(end)
		for s := range wake {
			q.wake(s)
		}
	}
}

// follow applies a page of events to the scanner's view of who is in which
// room, and returns the span changes and the destinations to wake.
func (q *Queue) follow(ctx context.Context, evs []storage.FedEventMeta) ([]storage.FedSpanChange, map[string]struct{}, error) {
	var changes []storage.FedSpanChange
	wake := map[string]struct{}{}
	touched := map[string]struct{}{}
	for i := range evs {
		e := &evs[i]
		if e.Type == "m.room.member" && e.StateKey != nil {
			if srv := serverOf(*e.StateKey); srv != "" && srv != q.cfg.ServerName {
				ch, err := q.memberChange(ctx, e, srv)
				if err != nil {
					return nil, nil, err
				}
				if ch != nil {
					changes = append(changes, *ch)
					wake[srv] = struct{}{} // its own join or its last leave
				}
			}
		}
		if e.OnBehalf != "" || serverOf(e.Sender) == q.cfg.ServerName {
			touched[e.RoomID] = struct{}{}
		}
	}
	// OpenRoomServers (joined.go) writes q.rooms from a request's
	// goroutine too, so even the scanner reads it under the lock.
	q.roomsMu.RLock()
	for room := range touched {
		for srv := range q.rooms[room] {
			wake[srv] = struct{}{}
		}
	}
	q.roomsMu.RUnlock()
	return changes, wake, nil
}

// memberChange applies one remote user's member event and returns the
// span change it makes, if any.
func (q *Queue) memberChange(ctx context.Context, e *storage.FedEventMeta, srv string) (*storage.FedSpanChange, error) {
	key := roomServer{e.RoomID, srv}
	before, ok := q.joinCounts[key]
	wasJoined := false
	prevMembership := "" // read only where a point span may need it
	if !ok {
		users, err := q.store.FedServerJoinedAt(ctx, e.RoomID, srv, e.Pos-1)
		if err != nil {
			return nil, err
		}
		before, wasJoined = len(users), slices.Contains(users, *e.StateKey)
	}
	if ok || (before == 0 && deniesOutsider(e, q.cfg.ServerName)) {
		prev, err := q.store.MemberEventsAt(ctx, e.RoomID, []string{*e.StateKey}, e.Pos-1)
		if err != nil {
			return nil, err
		}
		if len(prev) == 1 {
			prevMembership = prev[0].Membership
		}
		wasJoined = prevMembership == "join"
	}
	after := before
	if wasJoined {
		after--
	}
	if e.Membership == "join" {
		after++
	}
	if len(q.joinCounts) >= maxJoinCounts {
		clear(q.joinCounts)
	}
	q.joinCounts[key] = after
	switch {
	case before == 0 && after > 0:
		q.roomAdd(e.RoomID, srv)
		return &storage.FedSpanChange{Server: srv, RoomID: e.RoomID, Pos: e.Pos, Open: true}, nil
	case before > 0 && after == 0:
		q.roomDel(e.RoomID, srv)
		return &storage.FedSpanChange{Server: srv, RoomID: e.RoomID, Pos: e.Pos}, nil
	case before == 0 && after == 0 && (prevMembership == "knock" || prevMembership == "invite") && deniesOutsider(e, q.cfg.ServerName):
		// A kick or ban that denies a knock, or rescinds an invite, of a
		// user whose server has nobody in the room: the room's servers
		// miss that server, so it gets this one event (as Synapse sends a
		// rescinded invite to the invitee's server), and its user's sync
		// shows the room as left.
		return &storage.FedSpanChange{Server: srv, RoomID: e.RoomID, Pos: e.Pos, Point: true}, nil
	}
	return nil, nil
}

// deniesOutsider reports whether e is one of our users' leave or ban of
// another user: the only member event a server outside the room is sent.
func deniesOutsider(e *storage.FedEventMeta, us string) bool {
	return (e.Membership == "leave" || e.Membership == "ban") && e.Sender != *e.StateKey && serverOf(e.Sender) == us
}

func (q *Queue) roomAdd(room, srv string) {
	q.roomsMu.Lock()
	defer q.roomsMu.Unlock()
	m := q.rooms[room]
	if m == nil {
		m = map[string]struct{}{}
		q.rooms[room] = m
	}
	m[srv] = struct{}{}
}

func (q *Queue) roomDel(room, srv string) {
	q.roomsMu.Lock()
	defer q.roomsMu.Unlock()
	if m := q.rooms[room]; m != nil {
		delete(m, srv)
		if len(m) == 0 {
			delete(q.rooms, room)
		}
	}
}

// reloadRooms rebuilds the room map from the store after a failed write.
func (q *Queue) reloadRooms(ctx context.Context) {
	spans, err := q.store.FedOpenSpans(ctx)
	if err != nil {
		return // the next scan's failure will say so
	}
	q.roomsMu.Lock()
	clear(q.rooms)
	q.roomsMu.Unlock()
	for _, sp := range spans {
		q.roomAdd(sp.RoomID, sp.Server)
	}
}
