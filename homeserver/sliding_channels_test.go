package homeserver_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSlidingLongPollOfChannelFollowerWaits: sliding sync shows no channels
// or moments, so a followed channel's post must not keep a sliding long-poll
// of the follower busy. Its tokens carry no channel position; taking that as
// "everything is news" made the poll rebuild its answer until the timeout.
func TestSlidingLongPollOfChannelFollowerWaits(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	owner := srv.Register(t, "owner")
	fan := srv.Register(t, "fan")
	fan.CreateRoom(map[string]any{"name": "mine"})
	id := owner.MustDo("POST", chans, map[string]any{"name": "News"}).Get("channel_id").String()
	base := chans + "/" + hstest.Esc(id)
	fan.MustDo("POST", base+"/follow", map[string]any{})
	owner.MustDo("POST", base+"/posts", map[string]any{"text": "old news"})

	body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1}}}
	pos := sliding(t, fan, "", 0, body).Get("pos").String()
	pos = sliding(t, fan, pos, 0, body).Get("pos").String()

	// A spinning poll burns a core for its whole timeout; a waiting one
	// next to nothing. A quarter of the timeout leaves room for a slow
	// race-detector build and a busy machine.
	const timeout = 800 * time.Millisecond
	cpu := processCPU()
	res := sliding(t, fan, pos, int(timeout/time.Millisecond), body)
	if used := processCPU() - cpu; used > timeout/4 {
		t.Errorf("a quiet %v long-poll used %v of CPU: it rebuilt its answer instead of waiting", timeout, used)
	}
	if n := len(res.Get("rooms").Map()); n != 0 {
		t.Errorf("quiet long-poll sent %d rooms: %s", n, res.Raw)
	}
}
