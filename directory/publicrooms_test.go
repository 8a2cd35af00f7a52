package directory

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

func stateEvent(typ, key, client, membership string) storage.Event {
	return storage.Event{Type: typ, StateKey: &key, Client: []byte(client), Membership: membership}
}

func TestSummarizeRoomAndFilter(t *testing.T) {
	state := []storage.Event{
		stateEvent("m.room.create", "", `{"content":{"room_version":"11","type":"m.space"}}`, ""),
		stateEvent("m.room.name", "", `{"content":{"name":"Cheese Lovers"}}`, ""),
		stateEvent("m.room.topic", "", `{"content":{"topic":"Tasty"}}`, ""),
		stateEvent("m.room.canonical_alias", "", `{"content":{"alias":"#cheese:x"}}`, ""),
		stateEvent("m.room.avatar", "", `{"content":{"url":"mxc://x/a"}}`, ""),
		stateEvent("m.room.join_rules", "", `{"content":{"join_rule":"public"}}`, ""),
		stateEvent("m.room.history_visibility", "", `{"content":{"history_visibility":"world_readable"}}`, ""),
		stateEvent("m.room.guest_access", "", `{"content":{"guest_access":"can_join"}}`, ""),
		stateEvent("m.room.name", "not-empty", `{"content":{"name":"ignored"}}`, ""),
		stateEvent("m.room.member", "@a:x", `{"content":{"membership":"join"}}`, "join"),
		stateEvent("m.room.member", "@b:x", `{"content":{"membership":"join"}}`, "join"),
		stateEvent("m.room.member", "@c:x", `{"content":{"membership":"leave"}}`, "leave"),
		stateEvent("m.room.topic", "", `{"content":{"topic":42}}`, ""), // later and malformed: no topic
	}
	p := Summarize("!r:x", state)
	want := PublicRoom{RoomID: "!r:x", NumJoinedMembers: 2, WorldReadable: true, GuestCanJoin: true, Name: "Cheese Lovers",
		CanonicalAlias: "#cheese:x", AvatarURL: "mxc://x/a", JoinRule: "public", RoomType: "m.space"}
	if p != want {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	space, none := "m.space", (*string)(nil)
	for _, c := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{GenericSearchTerm: "  CHEESE "}, true},
		{Filter{GenericSearchTerm: "#cheese"}, true},
		{Filter{GenericSearchTerm: "wine"}, false},
		{Filter{RoomTypes: []*string{&space}}, true},
		{Filter{RoomTypes: []*string{none}}, false},
	} {
		if got := c.f.Matches(&p); got != c.want {
			t.Errorf("%+v: %v", c.f, got)
		}
	}
	plain := PublicRoom{RoomID: "!p:x"}
	if !(&Filter{RoomTypes: []*string{none}}).Matches(&plain) {
		t.Error("null room type must match rooms without a type")
	}
}
