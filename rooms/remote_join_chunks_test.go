package rooms

import (
	"context"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
)

// TestPersistJoinedChunked: a remote join whose answer is bigger than
// joinChunk is stored in chunks ahead of the join and gives the same room
// as one job does: current state the answer's state plus the join, the
// join the one forward extremity, every state event in the history at a
// position below the join's, deeper events higher; stored again (a
// retried join), nothing changes.
func TestPersistJoinedChunked(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t, Config{MaxQueuePerUser: 1 << 20, MaxQueue: 1 << 20})
	for _, members := range []int{10, joinChunk + joinChunk/2} {
		rj := benchRemoteJoin(t, s.cfg.Key, "!chunked"+string(rune('a'+members%26))+":remote.test", members)
		pos, err := s.PersistJoined(ctx, rj)
		if err != nil {
			t.Fatalf("%d members: %v", members, err)
		}
		again, err := s.PersistJoined(ctx, rj)
		if err != nil || again != pos {
			t.Fatalf("%d members: stored again = %d, %v; want %d", members, again, err, pos)
		}
		cur, err := realStore(s).CurrentState(ctx, rj.RoomID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[authrules.StateKey]string{{Type: "m.room.member", StateKey: *rj.Join.StateKey}: rj.Join.ID}
		for k, id := range rj.State {
			want[k] = id
		}
		if len(cur) != len(want) {
			t.Fatalf("%d members: current state has %d entries, want %d", members, len(cur), len(want))
		}
		for _, e := range cur {
			if id := want[authrules.StateKey{Type: e.Type, StateKey: *e.StateKey}]; id != e.EventID {
				t.Fatalf("%d members: current %s/%s = %s, want %s", members, e.Type, *e.StateKey, e.EventID, id)
			}
		}
		ext, err := s.Extremities(ctx, rj.RoomID)
		if err != nil || len(ext) != 1 || ext[0].EventID != rj.Join.ID {
			t.Fatalf("%d members: extremities = %v, %v; want the join alone", members, ext, err)
		}
		ids := make([]string, len(rj.Events))
		for i, ev := range rj.Events {
			ids[i] = ev.ID
		}
		stored, err := s.EventsByID(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != len(ids) {
			t.Fatalf("%d members: %d of the %d state events stored", members, len(stored), len(ids))
		}
		posOf := map[string]int64{}
		for _, st := range stored {
			if st.Kind != "" || st.Pos >= pos {
				t.Fatalf("%d members: state event %s stored as %q at %d, want listed below the join's %d", members, st.EventID, st.Kind, st.Pos, pos)
			}
			posOf[st.EventID] = st.Pos
		}
		for i := 1; i < len(rj.Events); i++ { // built in depth order
			if posOf[rj.Events[i].ID] <= posOf[rj.Events[i-1].ID] {
				t.Fatalf("%d members: event %d (depth %d) at %d, not above event %d at %d", members, i, rj.Events[i].Depth,
					posOf[rj.Events[i].ID], i-1, posOf[rj.Events[i-1].ID])
			}
		}
	}
}
