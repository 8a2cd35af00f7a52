package clientapi

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestPowerAllows(t *testing.T) {
	pl := []byte(`{"users":{"@mod:x":50,"@admin:x":100},"users_default":0,"events":{"m.room.canonical_alias":50},"state_default":100}`)
	for user, want := range map[string]bool{"@mod:x": true, "@admin:x": true, "@nobody:x": false} {
		if got := powerAllows(pl, user, "m.room.canonical_alias"); got != want {
			t.Errorf("%s: %v", user, got)
		}
	}
	// Without an events entry, state_default applies; absent, it is 50.
	if powerAllows([]byte(`{"users":{"@mod:x":50},"state_default":60}`), "@mod:x", "m.room.canonical_alias") {
		t.Error("state_default 60 must refuse 50")
	}
	if !powerAllows([]byte(`{"users":{"@mod:x":50}}`), "@mod:x", "m.room.canonical_alias") {
		t.Error("default state_default is 50")
	}
	if !powerAllows(nil, "@anyone:x", "m.room.canonical_alias") {
		t.Error("no power levels: state_default is 0")
	}
	if powerAllows([]byte(`{"users":{"@mod:x":"100"}}`), "@mod:x", "m.room.canonical_alias") {
		t.Error("string levels must deny")
	}
}

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
	p := summarizeRoom("!r:x", state)
	want := publicRoom{RoomID: "!r:x", NumJoinedMembers: 2, WorldReadable: true, GuestCanJoin: true, Name: "Cheese Lovers",
		CanonicalAlias: "#cheese:x", AvatarURL: "mxc://x/a", JoinRule: "public", RoomType: "m.space"}
	if p != want {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	space, none := "m.space", (*string)(nil)
	for _, c := range []struct {
		f    publicRoomsFilter
		want bool
	}{
		{publicRoomsFilter{}, true},
		{publicRoomsFilter{GenericSearchTerm: "  CHEESE "}, true},
		{publicRoomsFilter{GenericSearchTerm: "#cheese"}, true},
		{publicRoomsFilter{GenericSearchTerm: "wine"}, false},
		{publicRoomsFilter{RoomTypes: []*string{&space}}, true},
		{publicRoomsFilter{RoomTypes: []*string{none}}, false},
	} {
		if got := c.f.matches(&p); got != c.want {
			t.Errorf("%+v: %v", c.f, got)
		}
	}
	plain := publicRoom{RoomID: "!p:x"}
	if !(&publicRoomsFilter{RoomTypes: []*string{none}}).matches(&plain) {
		t.Error("null room type must match rooms without a type")
	}
}
