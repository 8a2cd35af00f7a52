package inbox

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRemotePresence: a remote user's presence is written only when its
// state or status message changes, reads come from memory, and memory
// holds at most the bound; a local user cannot be set as remote.
func TestRemotePresence(t *testing.T) {
	p, w := newTestPresence()
	p.SetServerName("here.example", 2)
	ctx := context.Background()
	at := time.UnixMilli(1_000_000)
	for _, tc := range []struct{ state, msg string }{
		{"online", ""}, {"online", ""}, {"online", "hi"}, {"unavailable", "hi"},
	} {
		if err := p.Remote(ctx, "@r:there.example", tc.state, tc.msg, at, true); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := w.got(), []string{"online/", "online/hi", "unavailable/hi"}; !equal(got, want) {
		t.Errorf("writes = %q, want %q", got, want)
	}
	if state, msg, last, active := p.Get(ctx, "@r:there.example"); state != "unavailable" || msg != "hi" || !last.Equal(at) || !active {
		t.Errorf("Get = %s %q %v %v, want unavailable hi %v true", state, msg, last, active, at)
	}
	if err := p.Remote(ctx, "@l:here.example", "online", "", at, true); err == nil {
		t.Errorf("Remote for a local user = nil error, want one")
	}
	for i := range 5 {
		p.Remote(ctx, fmt.Sprintf("@u%d:there.example", i), "online", "", at, true)
	}
	if got := p.RemoteLen(); got != 2 {
		t.Errorf("remote users in memory = %d, want 2 (the bound)", got)
	}
	// Evicted: read from the store (which has nothing here): offline.
	if state, _, _, _ := p.Get(ctx, "@u0:there.example"); state != "offline" {
		t.Errorf("evicted user's state = %s, want offline from the store", state)
	}
}
