package inbox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// TestDeltaCacheDropAndRace: a drop forgets the room's deltas, and a delta
// rendered from a read that started before a drop is not kept.
func TestDeltaCacheDropAndRace(t *testing.T) {
	c := newDeltaCache()
	k := deltaKey{room: "!r", since: 1, roomPos: 2, limit: 10, filter: "f"}
	gen := c.generation()
	c.put(&roomDelta{key: k, buf: []byte("x")}, gen)
	if c.get(k) == nil {
		t.Fatalf("get after put = nil, want the delta")
	}
	c.drop("!r")
	if d := c.get(k); d != nil {
		t.Errorf("get after drop = %q, want nil", d.buf)
	}
	c.put(&roomDelta{key: k, buf: []byte("stale")}, gen) // read before the drop
	if d := c.get(k); d != nil {
		t.Errorf("get after a put from before the drop = %q, want nil", d.buf)
	}
	if c.bytes != 0 {
		t.Errorf("bytes held = %d, want 0", c.bytes)
	}
}

// TestDeltaCacheBounds: a room keeps its newest deltasPerRoom deltas.
func TestDeltaCacheBounds(t *testing.T) {
	c := newDeltaCache()
	for i := range deltasPerRoom + 2 {
		c.put(&roomDelta{key: deltaKey{room: "!r", since: int64(i)}, buf: []byte("ab")}, c.generation())
	}
	if got := len(c.rooms["!r"]); got != deltasPerRoom {
		t.Errorf("deltas kept = %d, want %d", got, deltasPerRoom)
	}
	if c.get(deltaKey{room: "!r", since: 0}) != nil || c.get(deltaKey{room: "!r", since: deltasPerRoom + 1}) == nil {
		t.Errorf("kept the wrong deltas: want the newest")
	}
	if c.bytes != 2*deltasPerRoom {
		t.Errorf("bytes held = %d, want %d", c.bytes, 2*deltasPerRoom)
	}
}

// TestDeltaMatchesOwnRendering: a delta written for a member is byte for
// byte what rendering the room for that member gives, ages included, and
// an event sent with a transaction ID makes its device an owner.
func TestDeltaMatchesOwnRendering(t *testing.T) {
	evs := []storage.Event{
		{Pos: 5, Sender: "@a:x", Type: "m.room.message", OriginTS: 1000, Client: []byte(`{"type":"m.room.message","content":{"body":"hi"}}`),
			TxnID: "t1", TxnDevice: "DEV"},
		{Pos: 6, Sender: "@b:x", Type: "m.room.member", StateKey: new(string), Membership: "join", OriginTS: 1500,
			Client: []byte(`{"type":"m.room.member","content":{"membership":"join"}}`), Unsigned: []byte(`{"replaces_state":"$x"}`)},
		{Pos: 7, Sender: "@b:x", Type: "m.bad", Client: []byte(`{`)},
	}
	r := &roomResp{since: 4, timeline: evs, state: evs[1:2]}
	d := &roomDelta{}
	w := &jsonWriter{}
	if !writeRoomHead(w, r, 0, rooms.Viewer{}, d) {
		t.Fatalf("writeRoomHead for the delta = false, want true")
	}
	d.buf = w.buf
	if got := fmt.Sprint(d.owners); got != "[{@a:x DEV}]" {
		t.Errorf("owners = %s, want [{@a:x DEV}]", got)
	}
	for _, v := range []rooms.Viewer{{UserID: "@b:x", DeviceID: "D2"}, {UserID: "@a:x", DeviceID: "OTHER"}} {
		own := &jsonWriter{}
		writeRoomHead(own, r, 123456, v, nil)
		if got := string(d.appendTo(nil, 123456)); got != string(own.buf) {
			t.Errorf("delta for %v:\n got %s\nwant %s", v, got, own.buf)
		}
	}
	if !d.ownedBy(rooms.Viewer{UserID: "@a:x", DeviceID: "DEV"}) {
		t.Errorf("ownedBy(sending device) = false, want true")
	}
	if got := string(d.appendTo(nil, 0)); !strings.Contains(got, `"age":0`) {
		t.Errorf("delta at a time before the events = %s, want ages clamped to 0", got)
	}
}
