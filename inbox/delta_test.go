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

// BenchmarkRoomRender is the per-member render of one joined room woken by
// a message (the message and its sender's lazy-loaded member event): own
// renders it for the member as every member did before the shared delta,
// delta copies the shared bytes and fills in the ages. allocs/op are per
// member.
func BenchmarkRoomRender(b *testing.B) {
	sk := "@alice:example.org"
	evs := []storage.Event{
		{Pos: 41, Sender: sk, Type: "m.room.member", StateKey: &sk, Membership: "join", OriginTS: 1_700_000_000_000,
			Client: []byte(`{"content":{"displayname":"Alice","membership":"join"},"event_id":"$m","origin_server_ts":1700000000000,"room_id":"!r:example.org","sender":"@alice:example.org","state_key":"@alice:example.org","type":"m.room.member"}`)},
		{Pos: 42, Sender: sk, Type: "m.room.message", OriginTS: 1_700_000_000_500, TxnID: "t1", TxnDevice: "DEV",
			Client: []byte(`{"content":{"body":"hello, everyone","msgtype":"m.text"},"event_id":"$e","origin_server_ts":1700000000500,"room_id":"!r:example.org","sender":"@alice:example.org","type":"m.room.message"}`)},
	}
	r := &roomResp{since: 40, timeline: evs[1:], state: evs[:1]}
	v := rooms.Viewer{UserID: "@bob:example.org", DeviceID: "BOB"}
	now := int64(1_700_000_001_000)
	w := &jsonWriter{buf: make([]byte, 0, 4096)}
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.buf = w.buf[:0]
			writeRoomHead(w, r, now, v, nil)
		}
	})
	b.Run("delta", func(b *testing.B) {
		d := &roomDelta{}
		dw := &jsonWriter{}
		writeRoomHead(dw, r, 0, rooms.Viewer{}, d)
		d.buf = dw.buf
		b.ReportAllocs()
		for b.Loop() {
			w.buf = d.appendTo(w.buf[:0], now)
		}
	})
}
