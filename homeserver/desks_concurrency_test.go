package homeserver_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeskConcurrentAssignment is rule 5: forty customers open at once,
// then five agents free their slots at once, wave after wave, until
// everyone is served. A watcher checks the desk all along. No agent may
// ever exceed capacity, no consultation may be held twice, and every
// consultation must be assigned exactly once.
func TestDeskConcurrentAssignment(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			const agents, customers, capacity = 5, 40, 2
			w := newDeskShop(t, hstest.Options{Store: store}, "rush", map[string]any{"categories": []string{"presale"}, "capacity": capacity})
			var as []*hstest.Client
			for i := range agents {
				as = append(as, w.agent(fmt.Sprintf("agent%d", i), map[string]any{}))
			}
			var cs []*hstest.Client
			for i := range customers {
				cs = append(cs, w.srv.Register(t, fmt.Sprintf("buyer%02d", i)))
			}

			stop := make(chan struct{})
			watched := make(chan int)
			go func() { // the watcher: invariants hold at every moment
				n := 0
				defer func() { watched <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					st, res := w.boss.Do("GET", w.deskPath(), nil)
					if st != 200 {
						t.Errorf("desk view = %d %s", st, res.Raw)
						return
					}
					deskInvariants(t, res)
					n++
				}
			}()

			rooms := make([]string, customers)
			var wg sync.WaitGroup
			for i, c := range cs {
				wg.Go(func() {
					st, res := c.Do("POST", deskClientAPI+"rush/consultations", map[string]any{"category": "presale", "body": "hurry"})
					if st != 200 {
						t.Errorf("open %d = %d %s", i, st, res.Raw)
						return
					}
					rooms[i] = res.Get("room_id").String()
				})
			}
			wg.Wait()
			st := w.live()
			if got := st.Get("metrics.assigned").Int(); got != agents*capacity {
				t.Errorf("assigned after the rush = %d, want %d", got, agents*capacity)
			}
			if got := st.Get("metrics.queue_length").Int(); got != customers-agents*capacity {
				t.Errorf("queued after the rush = %d, want %d", got, customers-agents*capacity)
			}

			// Waves: every agent closes one consultation at the same time.
			closed := 0
			for wave := 0; closed < customers; wave++ {
				if wave > customers {
					t.Fatalf("after %d waves only %d of %d closed", wave, closed, customers)
				}
				var mu sync.Mutex
				for _, a := range as {
					wg.Go(func() {
						st, list := a.Do("GET", deskClientAPI+"rush/consultations?state=assigned", nil)
						if st != 200 {
							t.Errorf("list = %d %s", st, list.Raw)
							return
						}
						mine := list.Get("consultations").Array()
						if len(mine) == 0 {
							return
						}
						if st, res := a.Do("POST", deskClientAPI+"rush/consultations/"+mine[0].Get("consultation_id").String()+"/close", map[string]any{}); st != 200 {
							t.Errorf("close = %d %s", st, res.Raw)
							return
						}
						mu.Lock()
						closed++
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			close(stop)
			t.Logf("the watcher checked the desk %d times", <-watched)

			// Each room saw exactly one agent, told by exactly one notice.
			for i, room := range rooms {
				if room == "" {
					continue
				}
				var assigned []string
				for _, n := range deskNotices(cs[i], room) {
					if n.Get("kind").String() == "assigned" {
						assigned = append(assigned, n.Get("agent").String())
					}
				}
				if len(assigned) != 1 {
					t.Errorf("customer %d was assigned %v, want exactly one agent", i, assigned)
				}
			}
			if m := w.live().Get("metrics"); m.Get("consultations_opened").Int() != customers || m.Get("assigned").Int() != 0 || m.Get("queue_length").Int() != 0 {
				t.Errorf("metrics at the end = %s, want %d opened, none open", m.Raw, customers)
			}
		})
	}
}
