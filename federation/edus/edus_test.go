package edus

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/storage"
)

// fakeRooms is a routing table: user -> rooms, room -> members.
type fakeRooms struct {
	rooms map[string][]string
	quiet map[string]bool
}

func (f fakeRooms) JoinedRooms(user string) (map[string]int64, int64) {
	out := map[string]int64{}
	for room, members := range f.rooms {
		if slices.Contains(members, user) {
			out[room] = 1
		}
	}
	return out, 1
}

func (f fakeRooms) QuietRooms(rooms map[string]int64) map[string]bool {
	out := map[string]bool{}
	for r := range rooms {
		if f.quiet[r] {
			out[r] = true
		}
	}
	return out
}

func (f fakeRooms) SharesRoomWithSuffix(user, suffix string) bool {
	for _, members := range f.rooms {
		if slices.Contains(members, user) && slices.ContainsFunc(members, func(m string) bool { return strings.HasSuffix(m, suffix) }) {
			return true
		}
	}
	return false
}

// fakeQueue records EDUs per destination; servers come from the members.
type fakeQueue struct {
	rooms fakeRooms
	self  string
	mu    sync.Mutex
	got   map[string][]outbound.EDU
}

func (q *fakeQueue) ServersInRoom(dst []string, room string) []string {
	for _, m := range q.rooms.rooms[room] {
		if _, s, _ := strings.Cut(m, ":"); s != q.self && !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func (q *fakeQueue) EnqueueEDU(_ context.Context, dest string, e outbound.EDU) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.got == nil {
		q.got = map[string][]outbound.EDU{}
	}
	q.got[dest] = append(q.got[dest], e)
	return nil
}

func TestPresenceOutBatchesAndSkipsQuietRooms(t *testing.T) {
	rooms := fakeRooms{rooms: map[string][]string{
		"!small": {"@a:ax.example", "@b:bx.example"},
		"!big":   {"@a:ax.example", "@c:cx.example"},
	}, quiet: map[string]bool{"!big": true}}
	for i := range 250 {
		rooms.rooms["!small"] = append(rooms.rooms["!small"], fmt.Sprintf("@u%d:ax.example", i))
	}
	q := &fakeQueue{rooms: rooms, self: "ax.example"}
	p := NewPresenceOut("ax.example", rooms, q, nil)
	p.now = func() time.Time { return time.UnixMilli(10_000) }
	for i := range 250 {
		p.Changed(storage.Presence{UserID: fmt.Sprintf("@u%d:ax.example", i), State: "online", LastActiveTS: 9_000})
	}
	p.Changed(storage.Presence{UserID: "@a:ax.example", State: "unavailable", StatusMsg: "old", LastActiveTS: 1})
	p.Changed(storage.Presence{UserID: "@a:ax.example", State: "online", StatusMsg: "new", LastActiveTS: 9_500})
	p.flush(context.Background())
	if got := len(q.got["cx.example"]); got != 0 {
		t.Errorf("EDUs to cx.example (shares only a big room) = %d, want 0", got)
	}
	var sizes []int
	var a presenceEntry
	for _, e := range q.got["bx.example"] {
		var c presenceEDU
		if err := json.Unmarshal(e.Content, &c); err != nil || e.Type != "m.presence" {
			t.Fatalf("EDU %s %s: %v", e.Type, e.Content, err)
		}
		sizes = append(sizes, len(c.Push))
		for _, en := range c.Push {
			if en.UserID == "@a:ax.example" {
				a = en
			}
		}
	}
	sort.Ints(sizes)
	if want := []int{51, 100, 100}; !slices.Equal(sizes, want) {
		t.Errorf("push sizes to bx.example = %v, want %v (251 users, at most %d per EDU)", sizes, want, MaxPresencePush)
	}
	if want := (presenceEntry{UserID: "@a:ax.example", Presence: "online", LastActiveAgo: 500, CurrentlyActive: true, StatusMsg: "new"}); a != want {
		t.Errorf("@a's entry = %+v, want %+v (the newest change)", a, want)
	}
}

// memDeviceStore is a DeviceStore in memory.
type memDeviceStore struct {
	devices   []storage.Device
	keys      map[string]string // device -> keys JSON
	xs        map[string]string // master, self_signing
	stream    int64
	announced map[string]string
}

func (m *memDeviceStore) DevicesOf(context.Context, []string) ([]storage.Device, error) {
	return slices.Clone(m.devices), nil
}
func (m *memDeviceStore) DeviceKeys(_ context.Context, u []string) (map[string]map[string]string, error) {
	return map[string]map[string]string{u[0]: m.keys}, nil
}
func (m *memDeviceStore) CrossSigningKeys(_ context.Context, u []string) (map[string]map[string]string, error) {
	return map[string]map[string]string{u[0]: m.xs}, nil
}
func (m *memDeviceStore) DeviceListAnnounced(context.Context, string) (int64, map[string]string, error) {
	out := map[string]string{}
	for k, v := range m.announced {
		out[k] = v
	}
	return m.stream, out, nil
}
func (m *memDeviceStore) SaveDeviceListAnnounced(_ context.Context, _ string, stream int64, set map[string]string, gone []string) error {
	m.stream = stream
	for k, v := range set {
		m.announced[k] = v
	}
	for _, k := range gone {
		delete(m.announced, k)
	}
	return nil
}

func TestDeviceListOutAnnouncesTheDifference(t *testing.T) {
	const user = "@a:ax.example"
	rooms := fakeRooms{rooms: map[string][]string{"!big": {user, "@b:bx.example"}}, quiet: map[string]bool{"!big": true}}
	q := &fakeQueue{rooms: rooms, self: "ax.example"}
	st := &memDeviceStore{keys: map[string]string{}, xs: map[string]string{}, announced: map[string]string{}}
	d := NewDeviceListOut(st, rooms, q, nil)
	ctx := context.Background()
	step := func(name string, want ...string) {
		t.Helper()
		q.got = nil
		if err := d.Announce(ctx, user); err != nil {
			t.Fatalf("%s: Announce: %v", name, err)
		}
		var got []string
		for _, e := range q.got["bx.example"] { // a big room still carries device lists
			var c struct {
				DeviceID string          `json:"device_id"`
				Stream   int64           `json:"stream_id"`
				Prev     []int64         `json:"prev_id"`
				Deleted  bool            `json:"deleted"`
				Master   json.RawMessage `json:"master_key"`
			}
			json.Unmarshal(e.Content, &c)
			if e.Type == "m.signing_key_update" {
				got = append(got, "sk "+string(c.Master))
				continue
			}
			got = append(got, fmt.Sprint(c.DeviceID, " ", c.Stream, " ", c.Prev, " ", c.Deleted))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: EDUs = %q, want %q", name, got, want)
		}
	}
	st.devices = []storage.Device{{UserID: user, DeviceID: "D1"}, {UserID: user, DeviceID: "D2"}}
	step("two devices", "D1 1 [0] false", "D2 2 [1] false")
	step("nothing changed")
	st.keys["D2"] = `{"user_id":"@a:ax.example","device_id":"D2"}`
	step("keys of D2", "D2 3 [2] false")
	st.devices = st.devices[1:]
	st.xs["master"] = `{"user_id":"@a:ax.example"}`
	step("D1 gone, a master key", "D1 4 [3] true", `sk {"user_id":"@a:ax.example"}`)
}

type fakeFetcher struct {
	mu    sync.Mutex
	lists map[string]UserDevices
}

func (f *fakeFetcher) UserDevices(_ context.Context, user string) (UserDevices, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[user], nil
}

func devKeys(user, dev string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"user_id":%q,"device_id":%q,"keys":{}}`, user, dev))
}

func listOf(user string, stream int64, devs ...string) UserDevices {
	var u UserDevices
	u.StreamID = stream
	for _, d := range devs {
		u.Devices = append(u.Devices, struct {
			DeviceID    string          `json:"device_id"`
			DisplayName string          `json:"device_display_name"`
			Keys        json.RawMessage `json:"keys"`
		}{DeviceID: d, Keys: devKeys(user, d)})
	}
	return u
}

func cachedIDs(c *RemoteDevices, user string) string {
	devs, _, _, ok := c.Cached(user)
	if !ok {
		return "not cached"
	}
	var ids []string
	for d := range devs {
		ids = append(ids, d)
	}
	sort.Strings(ids)
	return fmt.Sprint(ids)
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRemoteDevicesUpdates(t *testing.T) {
	const u = "@b:bx.example"
	f := &fakeFetcher{lists: map[string]UserDevices{u: listOf(u, 5, "D1")}}
	tracked := true
	c := NewRemoteDevices(f, func(string) bool { return tracked }, 2, nil)
	defer c.Close()
	upd := func(dev string, stream, prev int64, deleted bool, keys json.RawMessage) {
		content, _ := json.Marshal(map[string]any{"stream_id": stream, "prev_id": []int64{prev}, "deleted": deleted, "keys": keys})
		c.Update(u, dev, content)
	}
	c.Missed(u)
	waitFor(t, "the first fetch", func() bool { return c.Has(u) })
	for _, tc := range []struct {
		name    string
		do      func()
		want    string
		fetches int64
	}{
		{"follows on", func() { upd("D2", 6, 5, false, devKeys(u, "D2")) }, "[D1 D2]", 1},
		{"seen already", func() { upd("D3", 6, 5, false, devKeys(u, "D3")) }, "[D1 D2]", 1},
		{"keys naming another device", func() { upd("D4", 7, 6, false, devKeys(u, "D1")) }, "[D1 D2]", 1},
		{"deleted", func() { upd("D1", 8, 7, true, nil) }, "[D2]", 1},
	} {
		tc.do()
		if got := cachedIDs(c, u); got != tc.want || c.Fetches() != tc.fetches {
			t.Errorf("%s: cached %s after %d fetches, want %s after %d", tc.name, got, c.Fetches(), tc.want, tc.fetches)
		}
	}
	// A gap: dropped, and fetched again.
	f.mu.Lock()
	f.lists[u] = listOf(u, 20, "D9")
	f.mu.Unlock()
	upd("GHOST", 12, 11, false, devKeys(u, "GHOST"))
	waitFor(t, "the fetch after a gap", func() bool { return c.Fetches() == 2 && c.Has(u) })
	if got := cachedIDs(c, u); got != "[D9]" {
		t.Errorf("after the gap: cached %s, want [D9]", got)
	}
	// A user who no longer shares a room is dropped when read.
	tracked = false
	if got := cachedIDs(c, u); got != "not cached" || c.Len() != 0 {
		t.Errorf("untracked user: %s, %d cached, want not cached, 0", got, c.Len())
	}
}

func TestRemoteDevicesBounded(t *testing.T) {
	f := &fakeFetcher{lists: map[string]UserDevices{}}
	c := NewRemoteDevices(f, func(string) bool { return true }, 2, nil)
	defer c.Close()
	for i := range 5 {
		u := fmt.Sprintf("@u%d:bx.example", i)
		f.mu.Lock()
		f.lists[u] = listOf(u, 1, "D")
		f.mu.Unlock()
		c.Missed(u)
		waitFor(t, u+" fetched", func() bool { return c.Has(u) })
	}
	if got := c.Len(); got != 2 {
		t.Errorf("cached users = %d, want 2 (the bound)", got)
	}
}

// FuzzRemoteDevicesUpdate: no update content, however malformed, panics
// the cache or leaves a device that names another user or device.
func FuzzRemoteDevicesUpdate(f *testing.F) {
	f.Add("D2", []byte(`{"stream_id":6,"prev_id":[5],"keys":{"user_id":"@b:bx.example","device_id":"D2"}}`))
	f.Add("D1", []byte(`{"stream_id":6,"prev_id":[5],"deleted":true}`))
	f.Add("D1", []byte(`{"stream_id":"x","prev_id":null}`))
	f.Add("D3", []byte(`{"stream_id":6,"prev_id":[5],"keys":{"user_id":"@x:y","device_id":"D3"}}`))
	const u = "@b:bx.example"
	f.Fuzz(func(t *testing.T, dev string, content []byte) {
		c := NewRemoteDevices(&fakeFetcher{}, func(string) bool { return false }, 10, nil)
		defer c.Close()
		c.mu.Lock()
		c.putLocked(&remoteEntry{user: u, streamID: 5, devices: map[string]json.RawMessage{"D1": devKeys(u, "D1")}, names: map[string]string{"D1": ""}})
		c.mu.Unlock()
		c.Update(u, dev, content)
		c.SigningKeyUpdate(u, content)
		c.mu.Lock()
		defer c.mu.Unlock()
		if el := c.entries[u]; el != nil {
			for d, k := range el.Value.(*remoteEntry).devices {
				if validDeviceKeys(k, u, d) == nil {
					t.Errorf("cached device %s with keys %s", d, k)
				}
			}
		}
	})
}
