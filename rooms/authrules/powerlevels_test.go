package authrules

import (
	"reflect"
	"testing"
)

func TestParsePowerLevels(t *testing.T) {
	got, err := ParsePowerLevels([]byte(`{"ban":60,"events":{"m.room.name":70},"events_default":1,"invite":2,"kick":3,"notifications":{"room":4,"other":9},"redact":5,"state_default":6,"users":{"@a:b":100},"users_default":7}`))
	if err != nil {
		t.Fatal(err)
	}
	want := PowerLevels{Users: map[string]int64{"@a:b": 100}, UsersDefault: 7, Events: map[string]int64{"m.room.name": 70},
		EventsDefault: 1, StateDefault: 6, Ban: 60, Kick: 3, Invite: 2, Redact: 5}
	want.Notifications.Room = 4
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePowerLevels(full) = %+v, want %+v", got, want)
	}
	empty, err := ParsePowerLevels([]byte(`{}`))
	wantEmpty := PowerLevels{Users: map[string]int64{}, Events: map[string]int64{}, StateDefault: 50, Ban: 50, Kick: 50, Redact: 50}
	wantEmpty.Notifications.Room = 50
	if err != nil || !reflect.DeepEqual(empty, wantEmpty) {
		t.Errorf("ParsePowerLevels({}) = %+v, %v, want spec defaults %+v", empty, err, wantEmpty)
	}
	for _, bad := range []string{`[]`, `{"ban":"50"}`, `{"ban":1.5}`, `{"ban":true}`, `{"kick":null}`, `{"ban":9007199254740992}`,
		`{"events":{"a":"1"}}`, `{"events":1}`, `{"notifications":{"room":"1"}}`, `{"users":{"@a:b":"1"}}`, `{"users":{"a":1}}`,
		`{"users":{"@a":1}}`, `{"users":{"@a:":1}}`, `{"users":[]}`, `not json`} {
		if _, err := ParsePowerLevels([]byte(bad)); err == nil {
			t.Errorf("ParsePowerLevels(%s) = nil error, want an error", bad)
		}
	}
}

func TestDefaultPowerLevels(t *testing.T) {
	p := DefaultPowerLevels(alice)
	tests := []struct {
		name      string
		got, want int64
	}{
		{"creator", p.UserLevel(alice), 100},
		{"other user", p.UserLevel(bob), 0},
		{"message", p.EventLevel("m.room.message", false), 0},
		{"state", p.EventLevel("m.room.name", true), 50},
		{"ban", p.Ban, 50}, {"kick", p.Kick, 50}, {"redact", p.Redact, 50}, {"invite", p.Invite, 0},
		{"notifications.room", p.Notifications.Room, 50},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("DefaultPowerLevels(alice) %s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	custom, _ := ParsePowerLevels([]byte(`{"events":{"m.room.message":5,"m.room.name":0},"users_default":3}`))
	if got := custom.EventLevel("m.room.message", false); got != 5 {
		t.Errorf("EventLevel(m.room.message) = %d, want 5", got)
	}
	if got := custom.EventLevel("m.room.name", true); got != 0 {
		t.Errorf("EventLevel(m.room.name) = %d, want 0", got)
	}
	if got := custom.UserLevel(carol); got != 3 {
		t.Errorf("UserLevel(carol) = %d, want users_default 3", got)
	}
}
