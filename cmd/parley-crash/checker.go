package main

import (
	"context"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"
)

// view is one reader's copy of a room's history: its m.room.message events
// in the order that reader was given them.
type view struct {
	name   string
	events []event
}

// readViews reads every room through /messages as its first member, and
// through a fresh initial /sync on every device of every member. A timeline
// the sync cut short (limited) is completed by paging back from prev_batch
// with that device's token, as a client would.
func readViews(ctx context.Context, a *api, sc *scenario) (map[*room][]view, error) {
	out := make(map[*room][]view, len(sc.rooms))
	for _, r := range sc.rooms {
		d := r.members[0].devices[0]
		evs, err := readPages(ctx, a, d, r.id, "f", "")
		if err != nil {
			return nil, fmt.Errorf("read %s forwards: %w", r.id, err)
		}
		out[r] = []view{{name: "messages as " + d.userID + "/" + d.id, events: evs}}
	}
	type slot struct {
		d     *device
		u     *user
		views map[*room]view
	}
	var slots []*slot
	for _, u := range sc.users {
		for _, d := range u.devices {
			slots = append(slots, &slot{d: d, u: u, views: map[*room]view{}})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, s := range slots {
		g.Go(func() error {
			tls, err := a.initialSync(gctx, s.d)
			if err != nil {
				return fmt.Errorf("initial sync of %s/%s: %w", s.d.userID, s.d.id, err)
			}
			for _, r := range s.u.rooms {
				name := "sync of " + s.d.userID + "/" + s.d.id
				tl, ok := tls[r.id]
				if !ok {
					s.views[r] = view{name: name + " (room missing from rooms.join)"}
					continue
				}
				evs := onlyMessages(tl.Events)
				if tl.Limited {
					older, err := readPages(gctx, a, s.d, r.id, "b", tl.PrevBatch)
					if err != nil {
						return fmt.Errorf("page back %s as %s/%s: %w", r.id, s.d.userID, s.d.id, err)
					}
					slices.Reverse(older)
					evs = append(older, evs...)
					name += " + /messages back from prev_batch"
				}
				s.views[r] = view{name: name, events: evs}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, s := range slots {
		for _, r := range s.u.rooms {
			out[r] = append(out[r], s.views[r])
		}
	}
	return out, nil
}

// readPages pages /messages in direction dir from `from` until an empty
// chunk, keeping the messages in the order the server returned them.
func readPages(ctx context.Context, a *api, d *device, roomID, dir, from string) ([]event, error) {
	var out []event
	for page := 0; ; page++ {
		if page > 100000 {
			return nil, fmt.Errorf("%s: pagination does not end (token %q)", roomID, from)
		}
		chunk, end, err := a.messages(ctx, d, roomID, dir, from)
		if err != nil {
			return nil, err
		}
		out = append(out, onlyMessages(chunk)...)
		if len(chunk) == 0 || end == "" || end == from {
			return out, nil
		}
		from = end
	}
}

func onlyMessages(evs []event) []event {
	var out []event
	for _, e := range evs {
		if e.Type == "m.room.message" {
			out = append(out, e)
		}
	}
	return out
}

// check compares every view of every room with the send log and fills the
// verdict part of rep. Each broken promise is counted once per message (or
// per room for diverging orders), however many views show it; rep.Evidence
// names the first few with their views.
func check(sc *scenario, views map[*room][]view, rep *report) {
	byBody := map[string]*sendRecord{}
	perRoom := map[*room][]*sendRecord{}
	for _, recs := range sc.sends {
		for _, r := range recs {
			switch {
			case r.eventID != "":
				rep.Acknowledged++
			case r.attempts == 0:
				rep.NotSent++ // never on the wire: if it shows up, it is a phantom
				continue
			default:
				rep.Unacknowledged++
			}
			if r.rejected {
				rep.Rejected++
			}
			byBody[r.body] = r
			perRoom[r.room] = append(perRoom[r.room], r)
		}
	}
	ev := &evidence{}
	lost, dup, dupUnacked := map[*sendRecord]bool{}, map[*sendRecord]bool{}, map[*sendRecord]bool{}
	phantom, misordered := map[string]bool{}, map[string]bool{}
	for _, r := range sc.rooms {
		canon := map[string]int{}
		for i, e := range views[r][0].events {
			if _, ok := canon[e.EventID]; !ok {
				canon[e.EventID] = i
			}
		}
		for _, rec := range perRoom[r] {
			if i, ok := canon[rec.eventID]; ok && rec.firstFail > 0 && views[r][0].events[i].TS <= rec.firstFail {
				rep.RecoveredByTxn++
			}
		}
		diverged := false
		for vi, v := range views[r] {
			rep.Views++
			ids, bodies, idBody := map[string]int{}, map[string]int{}, map[string]string{}
			lastSeq := map[int]int{}
			prev := -1
			for _, e := range v.events {
				b := e.body()
				ids[e.EventID]++
				if ids[e.EventID] == 1 {
					idBody[e.EventID] = b
					if p, ok := canon[e.EventID]; ok && !diverged {
						if p < prev {
							diverged = true
							ev.add("out_of_order", "room %s: %s has %s before an event that /messages puts earlier", r.id, v.name, e.EventID)
						}
						prev = p
					}
				}
				rec := byBody[b]
				if rec == nil || rec.room != r || rec.dev.userID != e.Sender {
					if !phantom[e.EventID] {
						phantom[e.EventID] = true
						ev.add("phantom", "room %s: %s shows %s from %s with body %q, which was never sent there", r.id, v.name, e.EventID, e.Sender, b)
					}
					continue
				}
				if bodies[b]++; bodies[b] > 1 {
					continue // a duplicate: counted below, not as a reorder too
				}
				if last, ok := lastSeq[rec.client]; ok && rec.seq < last {
					if !misordered[e.EventID] {
						misordered[e.EventID] = true
						ev.add("out_of_order", "room %s: %s shows client %d seq %d (%s) after its seq %d", r.id, v.name, rec.client, rec.seq, e.EventID, last)
					}
				} else {
					lastSeq[rec.client] = rec.seq
				}
			}
			for _, rec := range perRoom[r] {
				switch {
				case rec.eventID != "" && (ids[rec.eventID] == 0 || idBody[rec.eventID] != rec.body):
					if !lost[rec] {
						lost[rec] = true
						ev.add("lost", "room %s: client %d seq %d acknowledged as %s after %d attempt(s) is missing from %s", r.id, rec.client, rec.seq, rec.eventID, rec.attempts, v.name)
					}
				case rec.eventID != "" && (ids[rec.eventID] > 1 || bodies[rec.body] > 1):
					if !dup[rec] {
						dup[rec] = true
						ev.add("duplicated", "room %s: client %d seq %d (%s, txn %s) appears %d times in %s", r.id, rec.client, rec.seq, rec.eventID, rec.txn, bodies[rec.body], v.name)
					}
				case rec.eventID == "" && bodies[rec.body] > 1:
					if !dupUnacked[rec] {
						dupUnacked[rec] = true
						ev.add("duplicated_unacked", "room %s: unacknowledged client %d seq %d (txn %s) appears %d times in %s", r.id, rec.client, rec.seq, rec.txn, bodies[rec.body], v.name)
					}
				case rec.eventID == "" && vi == 0 && bodies[rec.body] == 1:
					rep.UnackedPresent++
				}
			}
		}
		if diverged {
			rep.OutOfOrderRooms++
		}
	}
	rep.Lost, rep.Duplicated, rep.DuplicatedUnacked = len(lost), len(dup), len(dupUnacked)
	rep.Phantom, rep.OutOfOrderEvents = len(phantom), len(misordered)
	rep.OutOfOrder = rep.OutOfOrderRooms + rep.OutOfOrderEvents
	rep.Evidence = ev.lines
}

// evidence keeps the first few examples of each kind of broken promise.
type evidence struct {
	lines []string
	kinds map[string]int
}

func (e *evidence) add(kind, format string, args ...any) {
	if e.kinds == nil {
		e.kinds = map[string]int{}
	}
	if e.kinds[kind]++; e.kinds[kind] <= 5 {
		e.lines = append(e.lines, kind+": "+fmt.Sprintf(format, args...))
	}
}
