package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// tiny is one room with two users (alice has two devices) and four
// messages, two per sender, all acknowledged except bob's last.
func tiny() (*scenario, *room, []*sendRecord) {
	alice := &user{idx: 0, devices: []*device{{userID: "@a:l", id: "A1"}, {userID: "@a:l", id: "A2"}}}
	bob := &user{idx: 1, devices: []*device{{userID: "@b:l", id: "B1"}}}
	r := &room{id: "!r:l"}
	r.add(alice)
	r.add(bob)
	sc := &scenario{users: []*user{alice, bob}, rooms: []*room{r}, sends: make([][]*sendRecord, 2)}
	var recs []*sendRecord
	for i, spec := range []struct {
		u    *user
		seq  int
		ack  bool
		sent bool
	}{{alice, 0, true, true}, {bob, 0, true, true}, {alice, 1, true, true}, {bob, 1, false, true}} {
		rec := &sendRecord{client: spec.u.idx, seq: spec.seq, room: r, dev: spec.u.devices[0],
			body: fmt.Sprintf("body %d/%d", spec.u.idx, spec.seq), attempts: 1}
		if spec.ack {
			rec.eventID = fmt.Sprintf("$e%d", i)
		}
		sc.sends[spec.u.idx] = append(sc.sends[spec.u.idx], rec)
		recs = append(recs, rec)
	}
	return sc, r, recs
}

func ev(rec *sendRecord, id string) event {
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": rec.body})
	return event{EventID: id, Type: "m.room.message", Sender: rec.dev.userID, Content: content}
}

// views gives the room four identical readers ( /messages and the three
// devices) built from one event list, which each case then edits.
func views(r *room, evs []event) map[*room][]view {
	var vs []view
	for _, name := range []string{"messages", "sync A1", "sync A2", "sync B1"} {
		vs = append(vs, view{name: name, events: slices.Clone(evs)})
	}
	return map[*room][]view{r: vs}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(recs []*sendRecord, vs []view)
		want  func(*report) int
		wantN int
	}{
		{"clean", func([]*sendRecord, []view) {}, func(r *report) int {
			return r.Lost + r.Duplicated + r.DuplicatedUnacked + r.OutOfOrder + r.Phantom
		}, 0},
		{"lost on one device", func(_ []*sendRecord, vs []view) { vs[2].events = vs[2].events[1:] },
			func(r *report) int { return r.Lost }, 1},
		{"acknowledged ID holds another body", func(recs []*sendRecord, vs []view) { recs[0].eventID = "$e1" },
			func(r *report) int { return r.Lost }, 1},
		{"duplicated in /messages", func(_ []*sendRecord, vs []view) {
			vs[0].events = append(vs[0].events, vs[0].events[0])
		}, func(r *report) int { return r.Duplicated }, 1},
		{"stored twice under two IDs", func(recs []*sendRecord, vs []view) {
			vs[3].events = append(vs[3].events, ev(recs[2], "$other"))
		}, func(r *report) int { return r.Duplicated }, 1},
		{"unacknowledged stored twice", func(recs []*sendRecord, vs []view) {
			vs[1].events = append(vs[1].events, ev(recs[3], "$x"), ev(recs[3], "$y"))
		}, func(r *report) int { return r.DuplicatedUnacked }, 1},
		{"never sent", func(_ []*sendRecord, vs []view) {
			vs[1].events = append(vs[1].events, ev(&sendRecord{body: "nobody", dev: &device{userID: "@a:l"}}, "$p"))
		}, func(r *report) int { return r.Phantom }, 1},
		{"wrong sender", func(recs []*sendRecord, vs []view) { vs[0].events[0].Sender = "@b:l" },
			func(r *report) int { return r.Phantom }, 1},
		{"rooms disagree", func(_ []*sendRecord, vs []view) {
			e := vs[3].events
			e[0], e[1] = e[1], e[0] // alice 0 and bob 0: each sender's order still holds
		}, func(r *report) int { return r.OutOfOrderRooms*10 + r.OutOfOrderEvents }, 10},
		{"sender order broken everywhere", func(_ []*sendRecord, vs []view) {
			for i := range vs {
				e := vs[i].events
				e[0], e[2] = e[2], e[0] // alice 1 before alice 0
			}
		}, func(r *report) int { return r.OutOfOrderRooms*10 + r.OutOfOrderEvents }, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc, r, recs := tiny()
			vs := views(r, []event{ev(recs[0], "$e0"), ev(recs[1], "$e1"), ev(recs[2], "$e2"), ev(recs[3], "$u")})
			tc.edit(recs, vs[r])
			var rep report
			check(sc, vs, &rep)
			if got := tc.want(&rep); got != tc.wantN {
				t.Errorf("got %d, want %d; report %+v", got, tc.wantN, rep)
			}
			if (tc.wantN > 0) != rep.Broken() {
				t.Errorf("Broken() = %v with %+v", rep.Broken(), rep)
			}
			if rep.Acknowledged != 3 || rep.Unacknowledged != 1 || rep.Views != 4 {
				t.Errorf("acknowledged %d, unacknowledged %d, views %d; want 3, 1, 4", rep.Acknowledged, rep.Unacknowledged, rep.Views)
			}
		})
	}
}

func TestPlanLayout(t *testing.T) {
	for _, size := range [][2]int{{50, 20}, {20, 10}, {2, 1}, {30, 2}, {5, 9}} {
		cfg := config{Clients: size[0], Rooms: size[1], Sends: 100, Kills: 5, Seed: 42}
		sc := planLayout(cfg)
		twos := 0
		for _, u := range sc.users {
			if len(u.rooms) == 0 {
				t.Errorf("%v: %s is in no room", size, u.name)
			}
			if u.two {
				twos++
			}
		}
		if twos < min(3, cfg.Clients) {
			t.Errorf("%v: %d users with two devices, want at least 3", size, twos)
		}
		for _, r := range sc.rooms {
			seen := map[*user]bool{}
			for _, m := range r.members {
				if seen[m] {
					t.Errorf("%v: room %d has %s twice", size, r.idx, m.name)
				}
				seen[m] = true
			}
			if r.dm && len(r.members) != 2 || !r.dm && len(r.members) < min(groupSize, cfg.Clients) {
				t.Errorf("%v: room %d (dm %v) has %d members", size, r.idx, r.dm, len(r.members))
			}
		}
		plan := killPlan(cfg)
		if !slices.IsSorted(plan) || plan[0] < 5 || plan[len(plan)-1] > 90 {
			t.Errorf("%v: kill plan %v, want sorted within 5%%..90%% of 100 sends", size, plan)
		}
	}
}
