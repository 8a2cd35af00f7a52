package homeserver_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// presenceWindow is how long the storm tests watch. The coalescing rule
// allows one presence wake a second per user, so a fixed server answers a
// handful of syncs in it; the server as it was answered thousands.
const presenceWindow = 2 * time.Second

// syncLoop long-polls as a client does, with setPresence ("" for none),
// until ctx ends, and counts the syncs answered after the initial one.
// onBody sees each answered body.
func syncLoop(ctx context.Context, hc *http.Client, base, token, setPresence string, timeoutMs int, answered *atomic.Int64, onBody func(gjson.Result)) error {
	since := ""
	for ctx.Err() == nil {
		q := "/_matrix/client/v3/sync?timeout=" + strconv.Itoa(timeoutMs)
		if setPresence != "" {
			q += "&set_presence=" + setPresence
		}
		if since != "" {
			q += "&since=" + url.QueryEscape(since)
		}
		req, err := http.NewRequestWithContext(ctx, "GET", base+q, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil // the window ended
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			if ctx.Err() == nil {
				return &syncErr{status: resp.StatusCode, body: string(body)}
			}
			return nil
		}
		res := gjson.ParseBytes(body)
		if since != "" && ctx.Err() == nil {
			answered.Add(1)
		}
		if onBody != nil {
			onBody(res)
		}
		since = res.Get("next_batch").String()
	}
	return nil
}

type syncErr struct {
	status int
	body   string
}

func (e *syncErr) Error() string { return "sync = " + strconv.Itoa(e.status) + " " + e.body }

// TestPresenceTwoDevicesDoNotLoop: one device syncing with
// set_presence=online and another with set_presence=unavailable, both
// long-polling, used to wake each other for ever (each sync flipped the
// user's one presence value). The user's presence is now derived from both
// devices (online wins) and nothing changes, so both long-polls rest.
func TestPresenceTwoDevicesDoNotLoop(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			tab := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)

			ctx, cancel := context.WithTimeout(context.Background(), presenceWindow)
			defer cancel()
			var answered atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, dev := range []struct {
				c   *hstest.Client
				set string
			}{{alice, "online"}, {tab, "unavailable"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- syncLoop(ctx, http.DefaultClient, srv.URL, dev.c.Token, dev.set, 30000, &answered, nil)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("answered: %d", answered.Load())
			// At most the wake of the one real change (offline -> online)
			// and one coalesced follow-up, on each device.
			if got := answered.Load(); got > 6 {
				t.Errorf("long-polls answered in %v by two devices of one user = %d, want at most 6", presenceWindow, got)
			}
			status := "/_matrix/client/v3/presence/" + hstest.Esc(alice.UserID) + "/status"
			if got := bob.MustDo("GET", status, nil).Get("presence").String(); got != "online" {
				t.Errorf("alice's presence = %q, want online (the most active device wins)", got)
			}
		})
	}
}

// TestPresenceFlipperCoalesced: one client flipping its presence as fast as
// it can used to wake every room peer on each flip. A peer is now woken
// about once a second for that user, and still sees the final state.
func TestPresenceFlipperCoalesced(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String()

			ctx, cancel := context.WithTimeout(context.Background(), presenceWindow)
			defer cancel()
			var answered, flips atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			var peerErr error
			go func() {
				defer wg.Done()
				peerErr = syncLoop(ctx, http.DefaultClient, srv.URL, bob.Token, "", 30000, &answered, nil)
			}()
			states := []string{"online", "unavailable"}
			for ctx.Err() == nil {
				i := flips.Add(1)
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/_matrix/client/v3/sync?timeout=0&set_presence="+states[i%2], nil)
				req.Header.Set("Authorization", "Bearer "+alice.Token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			wg.Wait()
			if peerErr != nil {
				t.Fatal(peerErr)
			}
			t.Logf("answered: %d, flips: %d", answered.Load(), flips.Load())
			// One wake per second of the window, plus the first change and
			// slack for a loaded machine.
			if got := answered.Load(); got > 5 {
				t.Errorf("peer's long-polls answered while alice flipped %d times in %v = %d, want at most 5", flips.Load(), presenceWindow, got)
			}
			if flips.Load() < 20 {
				t.Logf("only %d flips in %v: the machine is slow", flips.Load(), presenceWindow)
			}
			// A change deferred by the coalescing is not lost: it reaches
			// bob's long-poll with no further request from alice.
			since = bob.Sync(since, 0).Get("next_batch").String()
			alice.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(alice.UserID)+"/status",
				map[string]any{"presence": "unavailable", "status_msg": "done"})
			hstest.Eventually(t, "bob's sync showing alice's last change", func() bool {
				res := bob.Sync(since, 3000)
				since = res.Get("next_batch").String()
				for _, e := range res.Get("presence.events").Array() {
					if e.Get("sender").String() == alice.UserID && e.Get("content.status_msg").String() == "done" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestPresenceExplicitAndSync: PUT /presence sets the user's state for all
// devices and holds until the devices' own (sync-driven) state changes.
func TestPresenceExplicitAndSync(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	status := "/_matrix/client/v3/presence/" + hstest.Esc(alice.UserID) + "/status"
	syncAs := func(set string) func() {
		return func() { alice.MustDo("GET", "/_matrix/client/v3/sync?timeout=0&set_presence="+set, nil) }
	}
	put := func(state string) func() {
		return func() { alice.MustDo("PUT", status, map[string]any{"presence": state, "status_msg": "busy day"}) }
	}
	steps := []struct {
		what string
		do   func()
		want string
	}{
		{"sync online", syncAs("online"), "online"},
		{"PUT offline (appear offline)", put("offline"), "offline"},
		{"sync online again: the devices did not change", syncAs("online"), "offline"},
		{"sync unavailable: the device changed", syncAs("unavailable"), "unavailable"},
		{"sync online", syncAs("online"), "online"},
		{"PUT unavailable", put("unavailable"), "unavailable"},
		{"sync offline: the device stops counting", syncAs("offline"), "offline"},
	}
	for _, s := range steps {
		s.do()
		p := bob.MustDo("GET", status, nil)
		if got := p.Get("presence").String(); got != s.want {
			t.Errorf("after %s: presence = %q, want %q", s.what, got, s.want)
		}
	}
	if got := bob.MustDo("GET", status, nil).Get("status_msg").String(); got != "busy day" {
		t.Errorf("status_msg = %q, want it kept across sync-driven changes", got)
	}
}
