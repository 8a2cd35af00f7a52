package homeserver_test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeskOpenSurvivesCrash: opening a consultation takes several room
// commits (create the room, join the customer, post the question) before
// the consultation is recorded. A crash after any of them once left the
// customer in a room with their question and no consultation, so no agent
// came, and a retry opened a second room. Every commit from the k-th on
// fails here, which is what a kill -9 at that point leaves behind. Then
// either the customer retries (same process) or the server restarts: both
// must end with one consultation, in one room, holding the question once.
func TestDeskOpenSurvivesCrash(t *testing.T) {
	steps := []string{"room", "join", "question"} // the commit that fails first
	for _, store := range hstest.Stores(t) {
		for k, step := range steps {
			for _, then := range []string{"retry", "restart"} {
				t.Run(fmt.Sprintf("%s/fail-%s/%s", store.Name, step, then), func(t *testing.T) {
					var commits atomic.Int64
					deskCrashOpen(t, store, then, func(w *deskShop, on bool) {
						if !on {
							w.srv.Srv.Store.SetCommitFault(nil)
							return
						}
						w.srv.Srv.Store.SetCommitFault(func() error {
							if commits.Add(1) > int64(k) {
								return errors.New("injected crash")
							}
							return nil
						})
					})
				})
			}
		}
	}
}

// TestDeskOpenSurvivesCrashBetweenSteps: the same, with the open stopped
// by the desks service's own fault hook where no room commit marks the
// spot: after the pending row, after the question (before routing), and
// after the consultation is recorded (before the pending row goes).
func TestDeskOpenSurvivesCrashBetweenSteps(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		for _, step := range []string{"pending", "question", "recorded"} {
			for _, then := range []string{"retry", "restart"} {
				t.Run(fmt.Sprintf("%s/after-%s/%s", store.Name, step, then), func(t *testing.T) {
					deskCrashOpen(t, store, then, func(w *deskShop, on bool) {
						if !on {
							w.srv.Srv.Desks.SetOpenFault(nil)
							return
						}
						w.srv.Srv.Desks.SetOpenFault(func(s string) error {
							if s == step {
								return errors.New("injected crash after " + s)
							}
							return nil
						})
					})
				})
			}
		}
	}
}

// deskCrashOpen opens a consultation with fault set, then recovers by a
// retry or a restart, and checks that exactly one consultation came of it.
func deskCrashOpen(t *testing.T, store hstest.Store, then string, fault func(w *deskShop, on bool)) {
	t.Helper()
	if store.URL != "" {
		store.URL = hstest.NewPostgresDB(t, postgresAdmin(t))
	}
	o := hstest.Options{Store: store, DataDir: t.TempDir()}
	w := newDeskShop(t, o, "shop", map[string]any{"capacity": 2})
	w.agent("ann", map[string]any{"skills": []string{"presale"}})
	cust := w.srv.Register(t, "cust")

	path := deskClientAPI + "shop/consultations"
	const question = "where is my parcel?"
	body := map[string]any{"category": "presale", "body": question}
	fault(w, true)
	if st, res := cust.Do("POST", path, body); st == 200 {
		t.Fatalf("open during the fault = %d %s, want a failure", st, res.Raw)
	}
	fault(w, false)

	if then == "restart" {
		w.srv.Stop()
		srv := hstest.Start(t, o)
		cust = srv.Login(t, "cust")
		hstest.Eventually(t, "the interrupted consultation to be finished", func() bool {
			return len(cust.MustDo("GET", path, nil).Get("consultations").Array()) > 0
		})
	}
	again := cust.MustDo("POST", path, body) // the customer's retry
	list := cust.MustDo("GET", path, nil).Get("consultations").Array()
	if len(list) != 1 || list[0].Get("consultation_id").String() != again.Get("consultation_id").String() {
		t.Fatalf("consultations = %v, want exactly the one the retry returned (%s)", list, again.Raw)
	}
	if st := again.Get("state").String(); st != "assigned" && st != "queued" {
		t.Errorf("consultation state = %q, want assigned or queued", st)
	}
	room := again.Get("room_id").String()
	joined := cust.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms")
	if got := joined.Array(); len(got) != 1 || got[0].String() != room {
		t.Errorf("customer's rooms = %s, want only the consultation's %s", joined.Raw, room)
	}
	questions := 0
	for _, b := range cust.MessageBodies(room) {
		if b == question {
			questions++
		}
	}
	if questions != 1 {
		t.Errorf("the question is in the room %d times, want once: %v", questions, cust.MessageBodies(room))
	}
	// After a restart the room catches up with the model just after the
	// consultation shows, so wait for the state event.
	hstest.Eventually(t, "the room's consultation state event", func() bool {
		st, res := cust.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/io.parley.desk.consultation", nil)
		return st == 200 && slices.Contains([]string{"assigned", "queued"}, res.Get("state").String())
	})
}

// TestDeskOpenAfterStalePending: a crash after the consultation is
// recorded but before its pending row goes leaves a stale row. Once that
// consultation is closed, the customer's next open in the category is a
// new consultation in a new room, not the old one finished again.
func TestDeskOpenAfterStalePending(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{"capacity": 2})
			ann := w.agent("ann", map[string]any{"skills": []string{"presale"}})
			cust := w.srv.Register(t, "cust")
			path := deskClientAPI + "shop/consultations"
			w.srv.Srv.Desks.SetOpenFault(func(step string) error {
				if step == "recorded" {
					return errors.New("injected crash after recorded")
				}
				return nil
			})
			if st, res := cust.Do("POST", path, map[string]any{"category": "presale", "body": "first"}); st == 200 {
				t.Fatalf("open during the fault = %d %s, want a failure", st, res.Raw)
			}
			w.srv.Srv.Desks.SetOpenFault(nil)
			list := cust.MustDo("GET", path, nil).Get("consultations").Array()
			if len(list) != 1 {
				t.Fatalf("consultations after the fault = %v, want the recorded one", list)
			}
			old := list[0].Get("consultation_id").String()
			w.close(ann, old, map[string]any{})

			next := w.open(cust, "presale", "second")
			if id := next.Get("consultation_id").String(); id == old || next.Get("room_id").String() == list[0].Get("room_id").String() {
				t.Errorf("open after the close = %s, want a new consultation in a new room (old %s)", next.Raw, list[0].Raw)
			}
			if got := cust.MessageBodies(next.Get("room_id").String()); len(got) == 0 || got[0] != "second" || slices.Contains(got, "first") {
				t.Errorf("new room's messages = %v, want the question \"second\" first and no \"first\"", got)
			}
		})
	}
}
