package push

import (
	"context"
	"encoding/json"
	"time"

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
		evs, mentions, err := s.store.PushEventsAfter(ctx, from, upto, scanPage)
		if err != nil {
			return err
		}
		end := upto
		if len(evs) == scanPage {
			end = evs[len(evs)-1].Pos
		}
		items, err := s.build(ctx, evs, mentions)
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
	muted   map[string]bool
	master  bool    // the master rule is on: nothing notifies
	pushers []int64 // http pushers
	rooms   []string
	unread  int64 // the badge at the last event queued for them
	counted bool  // unread was read from the store this page
}

// build turns a page of events into queue rows.
func (s *Service) build(ctx context.Context, evs []storage.PushEvent, mentions map[int64][]string) ([]storage.PushItem, error) {
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
	var items []storage.PushItem
	for i := range evs {
		ev := &evs[i]
		for _, m := range members[ev.RoomID] {
			// Joined after the event (or by it): it is history to them.
			if m.UserID == ev.Sender || m.JoinPos >= ev.Pos {
				continue
			}
			mentioned := false
			for _, u := range mentions[ev.Pos] {
				if u == m.UserID {
					mentioned = true
					break
				}
			}
			if !ev.Notify && !ev.RoomMention && !mentioned {
				continue
			}
			v, err := s.view(ctx, users, m.UserID)
			if err != nil {
				return nil, err
			}
			if v.master || v.muted[ev.RoomID] || len(v.pushers) == 0 {
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
				v.unread++ // the same rule as UnreadCounts: this event notifies them
			}
			tw := tweaksFor(ev.Type, ev.RoomMention, mentioned, counts[ev.RoomID])
			high := tw.Highlight || tw.Sound != "" || ev.Type == "m.room.encrypted"
			twJSON, _ := json.Marshal(tw) // plain struct: cannot fail
			for _, pid := range v.pushers {
				s.seq++
				items = append(items, storage.PushItem{PusherID: pid, Seq: s.seq, EventID: ev.EventID, RoomID: ev.RoomID,
					Pos: ev.Pos, High: high, Tweaks: string(twJSON), Unread: v.unread})
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
	muted, _, err := s.cfg.Rules.ForSync(ctx, userID, false)
	if err != nil {
		return nil, err
	}
	v.muted = muted
	if r, err := s.cfg.Rules.Rule(ctx, userID, "override", ".m.rule.master"); err == nil {
		v.master = r.Enabled
	}
	if v.pushers, err = s.store.HTTPPusherIDs(ctx, userID); err != nil {
		return nil, err
	}
	if len(v.pushers) > 0 {
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

// tweaks are the set_tweak actions of the server-default rule that
// matched, as the gateway receives them in devices[].tweaks.
type tweaks struct {
	Sound     string `json:"sound,omitempty"`
	Highlight bool   `json:"highlight,omitempty"`
}

// tweaksFor follows the spec's default rules (v1.12): a mention of the
// user sounds and highlights (.m.rule.is_user_mention), an @room or a
// tombstone highlights, a call invite rings, and a message in a room of
// two sounds (.m.rule.room_one_to_one, .m.rule.encrypted_room_one_to_one).
func tweaksFor(typ string, roomMention, userMention bool, members int) tweaks {
	switch {
	case userMention:
		return tweaks{Sound: "default", Highlight: true}
	case roomMention:
		return tweaks{Highlight: true}
	case typ == "m.call.invite":
		return tweaks{Sound: "ring"}
	case members == 2 && (typ == "m.room.message" || typ == "m.room.encrypted"):
		return tweaks{Sound: "default"}
	}
	return tweaks{}
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
