package homeserver_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeskShop scripts a shop: three agents with different skills and
// capacities, twenty customers asking pre-sale and after-sale questions.
// It checks least_busy routing exactly, the queue and its notices, an agent
// going offline mid-conversation (re-routed, history kept), the full queue
// draining in FIFO order per category with no customer skipped, a queued
// customer watching their position fall through sync on two devices, a
// transfer, the sticky return of a customer, and the metrics.
func TestDeskShop(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{
				"name": "Acme Shop", "categories": []string{"presale", "aftersale"}, "strategy": "least_busy",
				"capacity": 2, "reply_timeout_s": 600,
			})
			ann := w.agent("ann", map[string]any{"skills": []string{"presale"}, "capacity": 3})
			ben := w.agent("ben", map[string]any{"skills": []string{"presale", "aftersale"}}) // the desk's 2
			cat := w.agent("cat", map[string]any{"skills": []string{"aftersale"}, "capacity": 1})
			agents := map[string]*hstest.Client{ann.UserID: ann, ben.UserID: ben, cat.UserID: cat}

			// Twenty customers, even ones pre-sale, odd ones after-sale.
			type customer struct {
				c             *hstest.Client
				id, room, cat string
			}
			var cs []customer
			byID := map[string]*customer{}
			for i := range 20 {
				cat := []string{"presale", "aftersale"}[i%2]
				c := w.srv.Register(t, fmt.Sprintf("c%02d", i))
				res := w.open(c, cat, fmt.Sprintf("question %d about %s", i, cat))
				cs = append(cs, customer{c: c, id: res.Get("consultation_id").String(), room: res.Get("room_id").String(), cat: cat})
				w.live()
			}
			for i := range cs {
				byID[cs[i].id] = &cs[i]
			}
			// least_busy, exactly: lowest load, then idle longest, then user
			// ID. ann holds 3 pre-sale, ben 2, cat 1 after-sale; the rest wait.
			want := map[int]string{0: ann.UserID, 1: ben.UserID, 2: ann.UserID, 3: cat.UserID, 4: ben.UserID, 6: ann.UserID}
			nextPos := map[string]int64{}
			for i, cu := range cs {
				got := w.consultation(cu.c, cu.id)
				if a, ok := want[i]; ok {
					if got.Get("state").String() != "assigned" || got.Get("agent").String() != a {
						t.Errorf("customer %d = %s, want assigned to %s", i, got.Raw, a)
					}
					continue
				}
				nextPos[cu.cat]++
				if got.Get("state").String() != "queued" || got.Get("queue_position").Int() != nextPos[cu.cat] || got.Get("agent").Type != gjson.Null {
					t.Errorf("customer %d = %s, want queued at %d, no agent", i, got.Raw, nextPos[cu.cat])
				}
				st := deskState(cu.c, cu.room)
				if st.Get("state").String() != "queued" || st.Get("queue_position").Int() != nextPos[cu.cat] || st.Get("category").String() != cu.cat {
					t.Errorf("customer %d state event = %s, want queued at %d", i, st.Raw, nextPos[cu.cat])
				}
				if n := deskNotices(cu.c, cu.room); len(n) != 1 || n[0].Get("kind").String() != "queued" || n[0].Get("queue_position").Int() != nextPos[cu.cat] {
					t.Errorf("customer %d notices = %v, want one 'queued' at %d", i, n, nextPos[cu.cat])
				}
			}
			// The assigned see their agent in the room, told by a notice.
			for i, a := range want {
				cu := cs[i]
				if got, wantM := deskMembers(cu.c, cu.room), []string{"@desk.shop:localhost", a, cu.c.UserID}; !deskSameSet(got, wantM) {
					t.Errorf("customer %d room members = %v, want %v", i, got, wantM)
				}
				n := deskNotices(cu.c, cu.room)
				if len(n) != 1 || n[0].Get("kind").String() != "assigned" || n[0].Get("agent").String() != a {
					t.Errorf("customer %d notices = %v, want one 'assigned' to %s", i, n, a)
				}
			}

			// Every agent answers; the sweep records the first replies.
			for id, a := range deskLoads(w.live()) {
				for _, cid := range a {
					agents[id].Send(byID[cid].room, "hello-"+cid, "Hello, "+id+" here")
				}
			}
			w.sweep(time.Now())
			if got := w.live().Get("metrics.first_reply_seconds.count").Int(); got != 6 {
				t.Errorf("first replies = %d, want 6", got)
			}

			// ann goes offline mid-conversation. Nobody else has room for
			// pre-sale, so her three customers go to the front of the queue,
			// oldest first, and are told.
			deskPresence(ann, "offline")
			w.sweep(time.Now())
			st := w.live()
			if q := deskQueue(st); len(q) < 3 || !slices.Equal(q[:3], []string{cs[0].id, cs[2].id, cs[6].id}) {
				t.Errorf("queue after ann went offline = %v, want ann's %v first", q, []string{cs[0].id, cs[2].id, cs[6].id})
			}
			if got := st.Get("metrics.reroutes").Int(); got != 3 {
				t.Errorf("reroutes = %d, want 3", got)
			}
			for k, i := range []int{0, 2, 6} {
				cu := cs[i]
				n := deskNotices(cu.c, cu.room)
				last := n[len(n)-1]
				if last.Get("kind").String() != "rerouted" || last.Get("reason").String() != "offline" || last.Get("queue_position").Int() != int64(k+1) {
					t.Errorf("customer %d last notice = %s, want rerouted (offline) to position %d", i, last.Raw, k+1)
				}
				if slices.Contains(deskMembers(cu.c, cu.room), ann.UserID) {
					t.Errorf("ann is still in customer %d's room", i)
				}
			}

			// ben frees a slot: the front of the queue, ann's first customer,
			// goes to him, and he reads the whole conversation.
			w.close(ben, cs[4].id, map[string]any{})
			if got := w.consultation(cs[0].c, cs[0].id); got.Get("agent").String() != ben.UserID {
				t.Errorf("ann's first customer after ben freed a slot = %s, want ben", got.Raw)
			}
			if got := deskChat(ben, cs[0].room); len(got) < 2 || got[0] != "question 0 about presale" || got[1] != "Hello, "+ann.UserID+" here" {
				t.Errorf("ben reads %q in the re-routed room, want the question and ann's answer first", got)
			}
			// ann is back: she takes the next pre-sale customers in order.
			deskPresence(ann, "online")
			w.sweep(time.Now())
			if got := deskLoads(w.live())[ann.UserID]; !slices.Equal(got, []string{cs[2].id, cs[6].id, cs[8].id}) {
				t.Errorf("ann back online holds %v, want %v", got, []string{cs[2].id, cs[6].id, cs[8].id})
			}

			// c19, last after-sale in the queue, watches on a second device.
			c19b := w.srv.Login(t, "c19")
			since := c19b.Sync("", 0).Get("next_batch").String()

			// The queue drains: agents close their oldest consultation (the
			// customer rating it) until nobody waits. Who leaves the queue
			// must follow the queue's order within each category.
			queueBefore := deskQueue(w.live())
			var drained []string
			ratings := 0
			for round := 0; len(deskQueue(w.live())) > 0; round++ {
				if round > 40 {
					t.Fatal("the queue does not drain")
				}
				for _, a := range []*hstest.Client{ann, ben, cat} {
					held := deskLoads(w.live())[a.UserID]
					if len(held) == 0 {
						continue
					}
					q0 := deskQueue(w.live())
					cu := byID[held[0]]
					w.close(cu.c, cu.id, map[string]any{"rating": 5 - ratings%3})
					ratings++
					q1 := deskQueue(w.live())
					for _, id := range q0 {
						if !slices.Contains(q1, id) {
							drained = append(drained, id)
						}
					}
				}
			}
			for _, cat := range []string{"presale", "aftersale"} {
				var wantOrder, gotOrder []string
				for _, id := range queueBefore {
					if byID[id].cat == cat {
						wantOrder = append(wantOrder, id)
					}
				}
				for _, id := range drained {
					if byID[id].cat == cat {
						gotOrder = append(gotOrder, id)
					}
				}
				if !slices.Equal(gotOrder, wantOrder) {
					t.Errorf("%s left the queue in order %v, want %v", cat, gotOrder, wantOrder)
				}
			}
			// c19's second device saw its position fall one by one through
			// sync, then the assignment.
			var positions []int64
			for range 10 {
				s := c19b.MustDo("GET", `/_matrix/client/v3/sync?timeout=0&filter={"room":{"timeline":{"limit":100}}}&since=`+since, nil)
				since = s.Get("next_batch").String()
				for _, e := range hstest.Room(s, "join", cs[19].room).Get("timeline.events").Array() {
					if e.Get("type").String() == "io.parley.desk.consultation" {
						positions = append(positions, e.Get("content.queue_position").Int())
					}
				}
				if len(positions) > 0 && positions[len(positions)-1] == 0 {
					break
				}
			}
			if len(positions) < 2 || positions[len(positions)-1] != 0 {
				t.Fatalf("c19's device saw positions %v, want a countdown ending in assignment", positions)
			}
			for i := 1; i < len(positions)-1; i++ {
				if positions[i] != positions[i-1]-1 {
					t.Errorf("c19's device saw positions %v, want each step one less", positions)
					break
				}
			}

			// Everyone finishes; the queue stays empty.
			for _, a := range []*hstest.Client{ann, ben, cat} {
				for _, id := range deskLoads(w.live())[a.UserID] {
					w.close(a, id, map[string]any{})
				}
			}

			// A transfer: with cat busy an after-sale question goes to ben,
			// who answers and hands it to cat once she is available. The
			// customer is told; ben leaves; cat reads the history.
			w.status(cat, "busy")
			moved := w.open(cs[1].c, "aftersale", "my parcel is late")
			movedID, movedRoom := moved.Get("consultation_id").String(), moved.Get("room_id").String()
			if moved.Get("agent").String() != ben.UserID {
				t.Fatalf("after-sale with cat busy = %s, want ben", moved.Raw)
			}
			ben.Send(movedRoom, "before-transfer", "Let me pass you to our parcels expert")
			w.status(cat, "available")
			res := ben.MustDo("POST", deskClientAPI+"shop/consultations/"+movedID+"/transfer", map[string]any{"to": cat.UserID})
			if res.Get("agent").String() != cat.UserID || res.Get("state").String() != "assigned" {
				t.Errorf("transfer = %s, want assigned to cat", res.Raw)
			}
			n := deskNotices(cs[1].c, movedRoom)
			if last := n[len(n)-1]; last.Get("kind").String() != "transferred" || last.Get("agent").String() != cat.UserID {
				t.Errorf("after the transfer the customer's last notice = %s, want transferred to cat", last.Raw)
			}
			if got := deskMembers(cs[1].c, movedRoom); slices.Contains(got, ben.UserID) || !slices.Contains(got, cat.UserID) {
				t.Errorf("room after the transfer = %v, want cat in and ben out", got)
			}
			if got := deskChat(cat, movedRoom); !slices.Equal(got[:1], []string{"my parcel is late"}) || !slices.Contains(got, "Let me pass you to our parcels expert") {
				t.Errorf("cat reads %q, want the whole conversation", got)
			}
			if list := cat.MustDo("GET", deskClientAPI+"shop/consultations?state=open", nil); !strings.Contains(list.Raw, movedID) {
				t.Errorf("cat's open list = %s, want %s", list.Raw, movedID)
			}
			if list := ben.MustDo("GET", deskClientAPI+"shop/consultations?state=open", nil); strings.Contains(list.Raw, movedID) {
				t.Errorf("ben's open list = %s, still has %s", list.Raw, movedID)
			}

			// Sticky: a returning customer goes back to their last agent
			// when that agent can take them, even though another is less
			// busy; when that agent is away, least_busy decides.
			w.boss.MustDo("PUT", w.deskPath(), map[string]any{"strategy": "sticky"})
			w.status(ann, "busy")
			w.open(cs[2].c, "presale", "one more question") // ben's: he now holds one, ann none
			w.status(ann, "available")
			ret := cs[4] // ben closed their first consultation
			again := w.open(ret.c, "presale", "me again")
			if again.Get("agent").String() != ben.UserID || again.Get("consultation_id").String() == ret.id {
				t.Errorf("returning customer = %s, want a new consultation with ben", again.Raw)
			}
			w.close(ret.c, again.Get("consultation_id").String(), map[string]any{})
			w.status(ben, "away") // re-routes cs[2]'s question to ann
			again = w.open(ret.c, "presale", "me once more")
			if again.Get("agent").String() != ann.UserID {
				t.Errorf("returning customer while ben is away = %s, want ann", again.Raw)
			}

			// The figures, in JSON and for Prometheus.
			m := w.live().Get("metrics")
			if m.Get("consultations_opened").Int() != 24 || m.Get("reroutes").Int() != 4 || m.Get("queue_length").Int() != 0 ||
				m.Get("ratings.count").Int() != int64(ratings) || m.Get("first_reply_seconds.count").Int() < 6 {
				t.Errorf("metrics = %s, want 24 opened, 4 re-routes, empty queue, %d ratings, >= 6 first replies", m.Raw, ratings)
			}
			code, text := deskMetrics(t, w.boss)
			for _, line := range []string{
				`parley_desk_consultations_opened_total{desk="shop"} 24`,
				`parley_desk_reroutes_total{desk="shop"} 4`,
				`parley_desk_queue_length{desk="shop"} 0`,
				`parley_desk_first_reply_seconds{desk="shop",quantile="0.9"}`,
				fmt.Sprintf(`parley_desk_ratings_total{desk="shop",rating="5"} %d`, m.Get("ratings.by_value.5").Int()),
			} {
				if code != 200 || !strings.Contains(text, line) {
					t.Errorf("metrics (%d) lack %q:\n%s", code, line, text)
				}
			}
		})
	}
}
