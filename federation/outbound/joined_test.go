package outbound_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestOutboundOpenRoomServersWhileScanning: OpenRoomServers (called by a
// join through another server, on a request goroutine) and the scanner
// (following local sends in the same room) touch the queue's room map at
// once. Under -race this failed: the scanner read the map without its lock.
func TestOutboundOpenRoomServersWhileScanning(t *testing.T) {
	// The made-up servers are unreachable: a long backoff keeps their
	// retries from loading the store while the test runs.
	f := newFixture(t, hstest.Store{Name: "sqlite"}, func(c *outbound.Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
	q := f.startQueue()
	alice := f.register("alice")
	room := f.room(alice)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if err := q.OpenRoomServers(context.Background(), room, []string{fmt.Sprintf("s%d.test", i)}, 1); err != nil {
				t.Errorf("OpenRoomServers: %v", err)
				return
			}
		}
	}()
	for i := range 20 {
		alice.Send(room, fmt.Sprintf("t%d", i), "hello")
	}
	wg.Wait()
	if got := len(q.ServersInRoom(nil, room)); got != 50 {
		t.Errorf("ServersInRoom = %d servers, want 50", got)
	}
}
