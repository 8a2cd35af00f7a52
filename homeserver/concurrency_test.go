package homeserver_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestConcurrentSendsOneOrderNoGaps: senders on several devices send at
// once, retrying some txnIds; meanwhile a device chains incremental syncs.
// The chained syncs must deliver every event exactly once, in the same
// order /messages gives, and no retry may create a second event.
func TestConcurrentSendsOneOrderNoGaps(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			owner := srv.Register(t, "owner")
			room := owner.CreateRoom(map[string]any{"preset": "public_chat"})
			const senders, each = 6, 30
			var clients []*hstest.Client
			for i := 0; i < senders; i++ {
				c := srv.Register(t, fmt.Sprint("s", i))
				c.Join(room)
				clients = append(clients, c)
			}
			reader := srv.Login(t, "owner")
			since := reader.Sync("", 0).Get("next_batch").String()

			var seen []string // event IDs in sync order
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					s := reader.MustDo("GET", "/_matrix/client/v3/sync?timeout=200&since="+since+
						`&filter={"room":{"timeline":{"limit":1000}}}`, nil)
					for _, e := range hstest.Room(s, "join", room).Get("timeline.events").Array() {
						if e.Get("type").String() == "m.room.message" {
							seen = append(seen, e.Get("event_id").String())
						}
					}
					if hstest.Room(s, "join", room).Get("timeline.limited").Bool() {
						t.Errorf("an incremental sync was limited; raise the test's sync limit")
					}
					since = s.Get("next_batch").String()
					select {
					case <-stop:
						if len(hstest.Room(s, "join", room).Get("timeline.events").Array()) == 0 {
							return
						}
					default:
					}
				}
			}()

			var wg sync.WaitGroup
			ids := make([][]string, senders)
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < each; j++ {
						txn := fmt.Sprintf("c%d-%d", i, j)
						id := c.Send(room, txn, txn)
						if j%5 == 0 { // a client retrying a send it already got an answer for
							if again := c.Send(room, txn, txn); again != id {
								t.Errorf("retry of %s = %s, want %s", txn, again, id)
							}
						}
						ids[i] = append(ids[i], id)
					}
				}()
			}
			wg.Wait()
			close(stop)
			<-done

			var order []string
			for _, e := range owner.Messages(room) {
				order = append(order, e.Get("event_id").String())
			}
			if len(order) != senders*each {
				t.Fatalf("/messages has %d messages, want %d", len(order), senders*each)
			}
			if !slices.Equal(seen, order) {
				t.Errorf("chained syncs delivered %d events; first difference from /messages at %d", len(seen), firstDiff(seen, order))
			}
			// Each sender's own messages keep the order they were sent in.
			pos := map[string]int{}
			for i, id := range order {
				pos[id] = i
			}
			for i := range ids {
				for j := 1; j < len(ids[i]); j++ {
					if pos[ids[i][j]] < pos[ids[i][j-1]] {
						t.Errorf("sender %d: message %d is ordered before message %d", i, j, j-1)
					}
				}
			}
		})
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestClientHangsUpMidSend has clients give up on sends at every stage: the
// send must neither race with the writer (go test -race) nor be stored twice
// when retried.
func TestClientHangsUpMidSend(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*100*time.Microsecond)
				req, _ := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/hang%d-%d",
					srv.URL, hstest.Esc(room), g, i), strings.NewReader(`{"msgtype":"m.text","body":"x"}`))
				req.Header.Set("Authorization", "Bearer "+alice.Token)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				cancel()
				alice.Send(room, fmt.Sprintf("hang%d-%d", g, i), "x") // the retry a real client makes
			}
		})
	}
	wg.Wait()
	if n := len(alice.MessageBodies(room)); n != 200 {
		t.Errorf("room holds %d messages after 200 sends, each retried once; want 200", n)
	}
}
