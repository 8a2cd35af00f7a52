package push

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

const (
	scanPage = 500 // events read per query
	// scanPersistEvery bounds how often a scan position that queued
	// nothing is written: replaying a few seconds of log after a crash
	// queues nothing twice (those pages queued nothing), and an extra
	// write per commit would cost the database for nothing.
	scanPersistEvery = 5 * time.Second
)

func (s *Service) scanLoop() {
	defer s.wg.Done()
	persisted := s.scanned.Load()
	tick := time.NewTicker(scanPersistEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			if pos := s.scanned.Load(); pos > persisted {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = s.store.SetPushScanPos(ctx, pos) // best effort: a replay queues nothing twice
				cancel()
			}
			return
		case <-s.scanWake:
		case <-tick.C:
			// Commits made before the service was registered as a
			// listener are found here, and pushers deleted by logout
			// (which bypasses Set) are counted again.
			if pos, err := s.store.MaxPosition(s.ctx); err == nil {
				s.raiseLatest(pos)
			}
			s.setMu.Lock()
			if n, err := s.store.CountPushers(s.ctx); err == nil && n == 0 {
				s.anyPushers.Store(false)
			}
			s.setMu.Unlock()
			if pos := s.scanned.Load(); pos > persisted {
				if err := s.store.SetPushScanPos(s.ctx, pos); err == nil {
					persisted = pos
				}
			}
		}
		if err := s.scan(s.ctx, &persisted); err != nil && s.ctx.Err() == nil {
			s.log.Warn("push: scan failed; retrying on the next commit", "err", err)
		}
	}
}

// scan reads the log from the scan position to the latest, a page at a
// time, and queues what notifies.
func (s *Service) scan(ctx context.Context, persisted *int64) error {
	for {
		from, upto := s.scanned.Load(), s.latest.Load()
		if from >= upto {
			return nil
		}
		if !s.anyPushers.Load() {
			s.scanned.Store(upto) // nothing to read for: persisted on the tick
			continue
		}
		evs, err := s.store.PushEventsAfter(ctx, from, upto, scanPage)
		if err != nil {
			return err
		}
		end := upto
		if len(evs) == scanPage {
			end = evs[len(evs)-1].Pos
		}
		items, err := s.build(ctx, evs)
		if err != nil {
			return err
		}
		if len(items) > 0 {
			if err := s.enqueue(ctx, items, end); err != nil {
				return err
			}
			*persisted = end
		}
		s.scanned.Store(end)
	}
}

// userView is what the scanner knows of one user during one page.
type userView struct {
	rules   *pushrules.Evaluator // their whole ruleset, compiled (cached by pushrules)
	pushers []int64              // http pushers
	rooms   []string             // joined rooms not muted, for the badge
	unread  int64                // the badge at the last event queued for them
	counted bool                 // unread was read from the store this page
}

// build turns a page of events into queue rows: each event is evaluated
// against the whole push ruleset of each member with an http pusher.
func (s *Service) build(ctx context.Context, evs []storage.PushEvent) ([]storage.PushItem, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	roomSet := map[string]struct{}{}
	var roomIDs []string
	for i := range evs {
		if _, ok := roomSet[evs[i].RoomID]; !ok {
			roomSet[evs[i].RoomID] = struct{}{}
			roomIDs = append(roomIDs, evs[i].RoomID)
		}
	}
	members, counts, err := s.store.PushRoomMembers(ctx, roomIDs)
	if err != nil {
		return nil, err
	}
	users := map[string]*userView{}
	power := &eventPower{s: s, ctx: ctx, levels: map[string]*authrules.PowerLevels{}}
	var items []storage.PushItem
	for i := range evs {
		ev := &evs[i]
		pe := pushrules.Event{JSON: gjson.ParseBytes(ev.Client), MemberCount: counts[ev.RoomID], Power: power}
		power.roomID, power.sender = ev.RoomID, ev.Sender
		targets := members[ev.RoomID]
		if ev.Invitee != "" && ev.Invitee != ev.Sender {
			// The invitee is not joined, yet .m.rule.invite_for_me is
			// theirs to match; the room's members come after.
			targets = append([]storage.PushMember{{UserID: ev.Invitee}}, targets...)
		}
		for ti, m := range targets {
			// Joined after the event (or by it): it is history to them.
			// (An invitee, first when there is one, has no join.)
			if m.UserID == ev.Sender || m.JoinPos >= ev.Pos {
				continue
			}
			if ti > 0 && m.UserID == ev.Invitee {
				continue // evaluated once, as the invitee
			}
			v, err := s.view(ctx, users, m.UserID)
			if err != nil {
				return nil, err
			}
			if len(v.pushers) == 0 {
				continue
			}
			pe.DisplayName = m.DisplayName
			act := v.rules.Eval(&pe)
			if power.err != nil {
				return nil, power.err
			}
			if !act.Notify {
				continue
			}
			if !v.counted {
				got, err := s.store.UnreadCounts(ctx, m.UserID, v.rooms, ev.Pos)
				if err != nil {
					return nil, err
				}
				v.unread, v.counted = 0, true
				for _, u := range got {
					v.unread += u.Notifications
				}
			} else {
				v.unread++ // this event notifies them
			}
			// The push gateway spec leaves prio to the server; as Synapse
			// does, what sounds or highlights (and encrypted events, whose
			// rules the client may evaluate differently) goes high.
			high := act.Highlight || act.Sound != "" || ev.Type == "m.room.encrypted"
			tweaks := string(act.Tweaks)
			for _, pid := range v.pushers {
				s.seq++
				items = append(items, storage.PushItem{PusherID: pid, Seq: s.seq, EventID: ev.EventID, RoomID: ev.RoomID,
					Pos: ev.Pos, High: high, Tweaks: tweaks, Unread: v.unread})
			}
		}
	}
	return items, nil
}

// view loads what the scanner needs of a user once per page.
func (s *Service) view(ctx context.Context, users map[string]*userView, userID string) (*userView, error) {
	if v := users[userID]; v != nil {
		return v, nil
	}
	v := &userView{}
	var err error
	if v.pushers, err = s.store.HTTPPusherIDs(ctx, userID); err != nil {
		return nil, err
	}
	if len(v.pushers) > 0 {
		if v.rules, err = s.cfg.Rules.Evaluator(ctx, userID); err != nil {
			return nil, err
		}
		muted, _, err := s.cfg.Rules.ForSync(ctx, userID, false)
		if err != nil {
			return nil, err
		}
		ms, err := s.store.UserMemberships(ctx, userID, "join")
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if !muted[m.RoomID] {
				v.rooms = append(v.rooms, m.RoomID)
			}
		}
	}
	users[userID] = v
	return v, nil
}

// eventPower answers sender_notification_permission for the event being
// evaluated (roomID, sender), loading a room's power levels on first use
// in a page: only an event that tries an @room mention asks. It reads the
// room's current power levels, not those at the event: the scan runs
// moments after the commit, and a change in between is rare. Owned by the
// scanner goroutine.
type eventPower struct {
	s              *Service
	ctx            context.Context
	levels         map[string]*authrules.PowerLevels // per room, this page
	roomID, sender string
	err            error // a failed load: the page is retried
}

func (p *eventPower) SenderMayNotify(key string) bool {
	if key != "room" { // the only key the spec defines
		return false
	}
	pl := p.levels[p.roomID]
	if pl == nil {
		got, err := p.s.powerLevels(p.ctx, p.roomID)
		if err != nil {
			p.err = err
			return false
		}
		pl = &got
		p.levels[p.roomID] = pl
	}
	return pl.UserLevel(p.sender) >= pl.Notifications.Room
}

// powerLevels reads a room's current power model.
func (s *Service) powerLevels(ctx context.Context, roomID string) (authrules.PowerLevels, error) {
	room, err := s.store.GetRoom(ctx, roomID)
	if err != nil {
		return authrules.PowerLevels{}, fmt.Errorf("power levels of %s: %w", roomID, err)
	}
	ids, err := s.store.CurrentStateKeys(ctx, roomID, []dag.StateTuple{{Type: "m.room.create"}, {Type: "m.room.power_levels"}})
	if err != nil {
		return authrules.PowerLevels{}, err
	}
	load := func(typ string) (*pdu.Event, error) {
		id, ok := ids[dag.StateTuple{Type: typ}]
		if !ok {
			return nil, nil
		}
		e, err := s.store.GetEvent(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("power levels of %s: %w", roomID, err)
		}
		return &pdu.Event{Sender: e.Sender, Type: e.Type, StateKey: e.StateKey,
			Content: json.RawMessage(gjson.GetBytes(e.Client, "content").Raw)}, nil
	}
	create, err := load("m.room.create")
	if err != nil {
		return authrules.PowerLevels{}, err
	}
	if create == nil {
		return authrules.DefaultPowerLevels(room.Creator), nil
	}
	plEvent, err := load("m.room.power_levels")
	if err != nil {
		return authrules.PowerLevels{}, err
	}
	pl, err := authrules.RoomPowerLevels(room.Version, create, plEvent)
	if err != nil {
		// Unreadable power levels: only those with default power are
		// known; nobody may notify the room.
		return authrules.PowerLevels{Notifications: struct{ Room int64 }{Room: 1 << 62}}, nil
	}
	return pl, nil
}

// enqueue stores a page's rows with the new scan position, trimming
// pushers whose queue would pass MaxQueue, and wakes their workers.
func (s *Service) enqueue(ctx context.Context, items []storage.PushItem, end int64) error {
	added := map[int64]int64{}
	for i := range items {
		added[items[i].PusherID]++
	}
	var trims []storage.PushTrim
	max := int64(s.cfg.MaxQueue)
	s.mu.Lock()
	for id, n := range added {
		if s.pending[id]+n > max {
			trims = append(trims, storage.PushTrim{PusherID: id, Keep: max})
		}
	}
	s.mu.Unlock()
	dropped, err := s.store.PushEnqueue(ctx, items, trims, end)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range added {
		s.pending[id] += n - dropped[id]
		if d := dropped[id]; d > 0 {
			s.stats.dropped.Add(d)
			s.log.Warn("push: pusher queue full; oldest notifications dropped", "pusher", id, "dropped", d, "max_queue", max)
		}
		s.wakeLocked(id)
	}
	return nil
}
