package homeserver_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// deskSyncer follows one device's sync stream and collects what the desk
// sent: notice kinds and state-event states, per room, in order.
type deskSyncer struct {
	c       *hstest.Client
	since   string
	notices map[string][]string
	states  map[string][]string
}

func newDeskSyncer(c *hstest.Client) *deskSyncer {
	s := &deskSyncer{c: c, notices: map[string][]string{}, states: map[string][]string{}}
	s.since = c.Sync("", 0).Get("next_batch").String()
	return s
}

func (s *deskSyncer) poll() {
	res := s.c.MustDo("GET", `/_matrix/client/v3/sync?timeout=0&filter={"room":{"timeline":{"limit":100}}}&since=`+s.since, nil)
	s.since = res.Get("next_batch").String()
	each := func(room, r gjson.Result) bool {
		for _, e := range r.Get("timeline.events").Array() {
			switch {
			case e.Get("content.msgtype").String() == "m.notice":
				s.notices[room.String()] = append(s.notices[room.String()], e.Get(`content.io\.parley\.desk\.notice.kind`).String())
			case e.Get("type").String() == "io.parley.desk.consultation":
				s.states[room.String()] = append(s.states[room.String()], e.Get("content.state").String())
			}
		}
		return true
	}
	res.Get("rooms.join").ForEach(each)
	res.Get("rooms.leave").ForEach(each)
}

// TestDeskEventsReachEveryDevice: queueing, assignment and closing reach
// both devices of the customer and of the agent through plain sync, as
// notices and the io.parley.desk.consultation state event. Then: a late
// rating after the agent closed, the closed list, and deleting the desk,
// which closes what is open and tells the customer.
func TestDeskEventsReachEveryDevice(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{})
			agent := w.agent("ann", map[string]any{})
			w.status(agent, "busy")
			cust := w.srv.Register(t, "cust")
			devices := []*deskSyncer{newDeskSyncer(cust), newDeskSyncer(w.srv.Login(t, "cust")),
				newDeskSyncer(agent), newDeskSyncer(w.srv.Login(t, "ann"))}

			pollAll := func() {
				for _, d := range devices {
					d.poll()
				}
			}
			c := w.open(cust, "aftersale", "my order never came")
			id, room := c.Get("consultation_id").String(), c.Get("room_id").String()
			pollAll()
			w.status(agent, "available") // takes the queued customer at once
			pollAll()
			agent.Send(room, "a1", "Sorry! Let me look")
			w.close(agent, id, map[string]any{})
			pollAll()
			// The agent joins at assignment, with the history before it
			// (shared visibility), and leaves after the close notice.
			for i, d := range devices {
				want := []string{"queued", "assigned", "closed"}
				if !slices.Equal(d.notices[room], want) || !slices.Equal(d.states[room], want) {
					t.Errorf("device %d (%s) saw notices %v and states %v, want %v for both", i, d.c.UserID, d.notices[room], d.states[room], want)
				}
			}
			if got := agent.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms").Array(); len(got) != 0 {
				t.Errorf("agent's joined rooms after the close = %v, want none", got)
			}

			// The customer rates after the agent closed; once only.
			if got := w.close(cust, id, map[string]any{"rating": 4}); got.Get("rating").Int() != 4 || got.Get("state").String() != "closed" {
				t.Errorf("late rating = %s, want closed, rated 4", got.Raw)
			}
			if st, res := cust.Do("POST", deskClientAPI+"shop/consultations/"+id+"/close", map[string]any{"rating": 1}); st != 400 {
				t.Errorf("second rating = %d %s, want 400", st, res.Raw)
			}
			if got := deskState(cust, room); got.Get("rating").Int() != 4 {
				t.Errorf("state event after rating = %s, want rating 4", got.Raw)
			}
			list := cust.MustDo("GET", deskClientAPI+"shop/consultations?state=closed", nil).Get("consultations").Array()
			if len(list) != 1 || list[0].Get("consultation_id").String() != id || list[0].Get("agent").String() != agent.UserID {
				t.Errorf("closed list = %v, want %s with ann", list, id)
			}
			if got := w.consultation(agent, id); got.Get("state").String() != "closed" {
				t.Errorf("the agent reads the closed consultation as %s", got.Raw)
			}

			// Deleting the desk closes what is open, with a notice; the
			// customer keeps the room and its history.
			second := w.open(cust, "presale", "one more thing")
			w.boss.MustDo("DELETE", w.deskPath(), nil)
			n := deskNotices(cust, second.Get("room_id").String())
			if last := n[len(n)-1]; last.Get("kind").String() != "closed" {
				t.Errorf("after deleting the desk the last notice = %s, want closed", last.Raw)
			}
			if got := deskChat(cust, second.Get("room_id").String()); !slices.Equal(got, []string{"one more thing"}) {
				t.Errorf("the customer reads %q, want their question", got)
			}
			if st, _ := cust.Do("GET", deskClientAPI+"shop/consultations/"+id, nil); st != 404 {
				t.Errorf("a consultation of a deleted desk = %d, want 404", st)
			}
		})
	}
}

// TestDeskSurvivesRestart: the store is the truth. After a restart the
// desk has the same agents, loads, queue order and figures, and carries on
// routing: a freed slot goes to the head of the queue.
func TestDeskSurvivesRestart(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			w := newDeskShop(t, hstest.Options{Store: store, DataDir: dir}, "shop", map[string]any{"capacity": 1, "strategy": "sticky"})
			ann := w.agent("ann", map[string]any{"skills": []string{"presale"}})
			var ids []string
			for _, name := range []string{"c1", "c2", "c3"} {
				c := w.srv.Register(t, name)
				ids = append(ids, w.open(c, "presale", "hello from "+name).Get("consultation_id").String())
			}
			ann.Send(w.consultation(ann, ids[0]).Get("room_id").String(), "r1", "Hi c1")
			w.sweep(time.Now())
			w.close(ann, ids[0], map[string]any{}) // c2 moves up
			before := w.live()
			w.srv.Stop()

			w2 := &deskShop{t: t, srv: hstest.Start(t, hstest.Options{Store: store, DataDir: dir}), desk: "shop"}
			w2.boss = w2.srv.Login(t, "boss")
			after := w2.live()
			for _, path := range []string{"agents.#.user_id", "agents.#.load", "agents.#.status", "agents.#.consultations", "queue.#.consultation_id",
				"metrics.consultations_opened", "metrics.first_reply_seconds.count", "metrics.first_reply_seconds.p50", "strategy", "capacity"} {
				if a, b := after.Get(path).Raw, before.Get(path).Raw; a != b {
					t.Errorf("after restart %s = %s, want %s", path, a, b)
				}
			}
			ann2 := w2.srv.Login(t, "ann")
			w2.close(ann2, ids[1], map[string]any{})
			if got := w2.consultation(ann2, ids[2]); got.Get("state").String() != "assigned" || got.Get("agent").String() != ann.UserID {
				t.Errorf("after restart, the head of the queue = %s, want assigned to ann", got.Raw)
			}
			c3 := w2.srv.Login(t, "c3")
			if n := deskNotices(c3, w2.consultation(c3, ids[2]).Get("room_id").String()); len(n) != 2 || n[1].Get("kind").String() != "assigned" {
				t.Errorf("c3's notices = %v, want queued then assigned", n)
			}
		})
	}
}
