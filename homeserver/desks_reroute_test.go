package homeserver_test

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeskReroutes: rule 4 for each way an agent can be gone. Their
// consultation moves to the other agent, the customer is told why, the
// gone agent leaves the room, and the new one reads the whole history.
func TestDeskReroutes(t *testing.T) {
	cases := []struct {
		name    string
		reason  string
		trigger func(w *deskShop, gone *hstest.Client)
	}{
		{"presence offline", "offline", func(w *deskShop, gone *hstest.Client) {
			deskPresence(gone, "offline")
			w.sweep(time.Now())
		}},
		{"status away", "away", func(w *deskShop, gone *hstest.Client) { w.status(gone, "away") }},
		{"reply timeout", "timeout", func(w *deskShop, gone *hstest.Client) {
			w.sweep(time.Now().Add(30 * time.Second)) // within the 60 s limit: nothing moves
			if got := deskLoads(w.live())[gone.UserID]; len(got) != 1 {
				t.Errorf("%s holds %v before the timeout, want one", gone.UserID, got)
			}
			w.sweep(time.Now().Add(2 * time.Minute))
		}},
		{"removed from the desk", "removed", func(w *deskShop, gone *hstest.Client) {
			w.boss.MustDo("DELETE", w.deskPath()+"/agents/"+hstest.Esc(gone.UserID), nil)
		}},
	}
	for _, tc := range cases {
		for _, store := range hstest.Stores(t) { // a fresh database per case
			t.Run(tc.name+"/"+store.Name, func(t *testing.T) {
				w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{"reply_timeout_s": 60, "capacity": 2})
				a1 := w.agent("a1", map[string]any{"skills": []string{"presale"}})
				a2 := w.agent("a2", map[string]any{"skills": []string{"presale"}})
				x := w.srv.Register(t, "x")
				y := w.srv.Register(t, "y")
				cx := w.open(x, "presale", "does it come in red?") // a1: same load, first by ID
				cy := w.open(y, "presale", "and in blue?")         // a2: less busy
				if cx.Get("agent").String() != a1.UserID || cy.Get("agent").String() != a2.UserID {
					t.Fatalf("opened %s and %s, want a1 then a2", cx.Raw, cy.Raw)
				}
				room := cx.Get("room_id").String()
				a2.Send(cy.Get("room_id").String(), "y1", "Yes, in blue") // a2 answers: never timed out
				if tc.reason != "timeout" {
					a1.Send(room, "x1", "Let me check")
				}
				w.sweep(time.Now())

				tc.trigger(w, a1)

				got := w.consultation(x, cx.Get("consultation_id").String())
				if got.Get("agent").String() != a2.UserID || got.Get("state").String() != "assigned" {
					t.Errorf("after %s: %s, want assigned to a2", tc.name, got.Raw)
				}
				n := deskNotices(x, room)
				if last := n[len(n)-1]; last.Get("kind").String() != "rerouted" || last.Get("reason").String() != tc.reason || last.Get("agent").String() != a2.UserID {
					t.Errorf("last notice = %s, want rerouted to a2 because %s", last.Raw, tc.reason)
				}
				if members := deskMembers(x, room); slices.Contains(members, a1.UserID) || !slices.Contains(members, a2.UserID) {
					t.Errorf("room members = %v, want a2 and not a1", members)
				}
				if got := deskChat(a2, room); len(got) == 0 || got[0] != "does it come in red?" {
					t.Errorf("a2 reads %q, want the history from the first question", got)
				}
				if st := deskState(x, room); st.Get("agent").String() != a2.UserID || st.Get("state").String() != "assigned" {
					t.Errorf("state event = %s, want assigned to a2", st.Raw)
				}
				st := w.live()
				if st.Get("metrics.reroutes").Int() != 1 {
					t.Errorf("reroutes = %s, want 1", st.Get("metrics.reroutes").Raw)
				}
				if got := w.consultation(y, cy.Get("consultation_id").String()); got.Get("agent").String() != a2.UserID {
					t.Errorf("y, answered, = %s, want to stay with a2", got.Raw)
				}
				if tc.reason == "timeout" || tc.reason == "away" {
					for _, a := range st.Get("agents").Array() {
						if a.Get("user_id").String() == a1.UserID && a.Get("status").String() != "away" {
							t.Errorf("a1 = %s, want status away", a.Raw)
						}
					}
				}
			})
		}
	}
}
