package authrules

import (
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

func TestIsCreator(t *testing.T) {
	create := func(content string) *pdu.Event {
		return &pdu.Event{Sender: alice, Type: "m.room.create", Content: json.RawMessage(content)}
	}
	for _, tc := range []struct {
		version, content, user string
		want                   bool
	}{
		{"10", `{"creator":"@mod:example.org"}`, mod, true},
		{"10", `{"creator":"@mod:example.org"}`, alice, false},
		{"11", `{}`, alice, true},
		{"11", `{"additional_creators":["@mod:example.org"]}`, mod, false},
		{"12", `{"additional_creators":["@mod:example.org"]}`, mod, true},
		{"12", `{"additional_creators":["@mod:example.org"]}`, alice, true},
		{"12", `{"additional_creators":["@mod:example.org"]}`, bob, false},
		{"12", `{"additional_creators":"@bob:example.org"}`, bob, false},
		{"12", `{"additional_creators":[1,{"a":"@bob:example.org"}]}`, bob, false},
	} {
		if got := IsCreator(tc.version, create(tc.content), tc.user); got != tc.want {
			t.Errorf("IsCreator(v%s, %s, %s) = %v, want %v", tc.version, tc.content, tc.user, got, tc.want)
		}
	}
	if IsCreator("12", nil, alice) {
		t.Error("IsCreator(nil create) = true, want false")
	}
}
