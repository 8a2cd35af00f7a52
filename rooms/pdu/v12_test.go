package pdu

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// v12Create is a room version 12 create proto: no room ID, no parents.
func v12Create(content string) Proto {
	return Proto{
		Sender: "@alice:example.org", Type: "m.room.create", StateKey: strPtr(""),
		Content: json.RawMessage(content), PrevEvents: []string{}, AuthEvents: []string{},
		Depth: 1, OriginServerTS: 1700000000000,
	}
}

func TestV12CreateEventNamesTheRoom(t *testing.T) {
	create := mustBuild(t, v12Create(`{"room_version":"12","additional_creators":["@bob:example.org"]}`), "12")
	if want := "!" + create.ID[1:]; create.RoomID != want {
		t.Errorf("create.RoomID = %q, want %q", create.RoomID, want)
	}
	if gjson.GetBytes(create.Raw, "room_id").Exists() {
		t.Errorf("v12 create Raw has a room_id: %s", create.Raw)
	}
	if !ValidRoomIDFor("12", create.RoomID) || ValidRoomIDFor("11", create.RoomID) || !ValidRoomID(create.RoomID) {
		t.Errorf("room ID %q: ValidRoomIDFor(12) = %v, (11) = %v, ValidRoomID = %v; want true, false, true",
			create.RoomID, ValidRoomIDFor("12", create.RoomID), ValidRoomIDFor("11", create.RoomID), ValidRoomID(create.RoomID))
	}
	if got := CreateEventIDOf(create.RoomID); got != create.ID {
		t.Errorf("CreateEventIDOf(%s) = %q, want %q", create.RoomID, got, create.ID)
	}
	if got := CreateEventIDOf("!room:example.org"); got != "" {
		t.Errorf("CreateEventIDOf(legacy room ID) = %q, want \"\"", got)
	}

	parsed, err := Parse(create.Raw, "12")
	if err != nil || parsed.ID != create.ID || parsed.RoomID != create.RoomID || !bytes.Equal(parsed.Raw, create.Raw) {
		t.Fatalf("Parse(v12 create) = %+v, %v; want ID %s room %s", parsed, err, create.ID, create.RoomID)
	}
	// The same bytes are not a v11 event: a v11 create needs a room_id.
	if _, err := Parse(create.Raw, "11"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(v12 create as v11) = %v, want ErrInvalid", err)
	}

	// Naming the expected room is allowed; naming another is refused.
	p := v12Create(`{"room_version":"12","additional_creators":["@bob:example.org"]}`)
	p.RoomID = create.RoomID
	if again := mustBuild(t, p, "12"); again.ID != create.ID {
		t.Errorf("Build with the matching RoomID gave ID %s, want %s", again.ID, create.ID)
	}
	p.RoomID = "!other:example.org"
	if _, err := Build(p, "12", testKey("example.org")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Build(v12 create naming another room) = %v, want ErrInvalid", err)
	}

	// Redaction keeps the whole create content, additional_creators too.
	red := create.Redact("12")
	if red.ID != create.ID || red.RoomID != create.RoomID || !bytes.Equal(red.Content, create.Content) {
		t.Errorf("Redact(v12 create) = ID %s room %s content %s; want it unchanged", red.ID, red.RoomID, red.Content)
	}
}

func TestV12RoomIDFormats(t *testing.T) {
	create := mustBuild(t, v12Create(`{"room_version":"12"}`), "12")
	tests := []struct {
		name    string
		version string
		roomID  string
		ok      bool
	}{
		{"v12 event in a hashed room", "12", create.RoomID, true},
		{"v12 event in a legacy room", "12", "!room:example.org", false},
		{"v11 event in a hashed room", "11", create.RoomID, false},
		{"v11 event in a legacy room", "11", "!room:example.org", true},
		{"v12 hash one character short", "12", create.RoomID[:43], false},
		{"v12 hash with a bad character", "12", "!" + strings.Repeat("+", 43), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := message()
			p.RoomID = tt.roomID
			ev, err := Build(p, tt.version, testKey("example.org"))
			if got := err == nil; got != tt.ok {
				t.Fatalf("Build = %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				// A remote server's event in the wrong form is refused too.
				f := baseFields()
				f["room_id"] = `"` + tt.roomID + `"`
				if _, err := Parse(forge(t, f, tt.version, testKey("example.org")), tt.version); !errors.Is(err, ErrInvalid) {
					t.Errorf("Parse(forged) = %v, want ErrInvalid", err)
				}
				return
			}
			got, err := Parse(ev.Raw, tt.version)
			if err != nil || got.RoomID != tt.roomID || got.ID != ev.ID {
				t.Errorf("Parse(Build) = %+v, %v; want room %s", got, err, tt.roomID)
			}
		})
	}
}

// TestV12CreateWithRoomID checks that a remote create event that carries a
// room_id anyway still parses, with a RoomID that is not the one its ID
// derives, so the auth rules can refuse it (rule 1.2).
func TestV12CreateWithRoomID(t *testing.T) {
	f := baseFields()
	f["type"], f["state_key"], f["content"] = `"m.room.create"`, `""`, `{"room_version":"12"}`
	f["prev_events"], f["auth_events"] = `[]`, `[]`
	f["room_id"] = `"!` + strings.Repeat("A", 43) + `"`
	ev, err := Parse(forge(t, f, "12", testKey("example.org")), "12")
	if err != nil {
		t.Fatalf("Parse = %v, want nil", err)
	}
	if ev.RoomID == RoomIDOfCreate(ev.ID) {
		t.Errorf("RoomID %s equals the derived ID; the auth rules could not tell", ev.RoomID)
	}
}

func TestV12RedactionMatchesV11(t *testing.T) {
	create := mustBuild(t, v12Create(`{"room_version":"12"}`), "12")
	for _, p := range seedProtos() {
		if p.Type == "m.room.create" {
			continue
		}
		p.RoomID = create.RoomID
		ev := mustBuild(t, p, "12")
		if got, want := ev.Redact("12").Content, RedactContent(p.Type, p.Content, "11"); !bytes.Equal(got, want) {
			t.Errorf("Redact(v12 %s).Content = %s, want the v11 result %s", p.Type, got, want)
		}
	}
}

// FuzzParseV12 is FuzzParse for room version 12, whose create events have
// no room_id and whose room IDs have no server part.
func FuzzParseV12(f *testing.F) {
	key := testKey("example.org")
	create, err := Build(v12Create(`{"room_version":"12","additional_creators":["@bob:example.org"]}`), "12", key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(create.Raw)
	for _, p := range seedProtos() {
		if p.Type == "m.room.create" {
			continue
		}
		p.RoomID = create.RoomID
		ev, err := Build(p, "12", key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ev.Raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Parse(raw, "12")
		if err != nil && strings.Contains(err.Error(), "unparseable event") {
			t.Fatalf("Parse panicked: %v", err)
		}
		if ev == nil {
			return
		}
		if !ValidRoomIDFor("12", ev.RoomID) {
			t.Fatalf("Parse accepted room ID %q", ev.RoomID)
		}
		again, err2 := Parse(ev.Raw, "12")
		if again == nil || again.ID != ev.ID || again.RoomID != ev.RoomID || !bytes.Equal(again.Raw, ev.Raw) {
			t.Fatalf("Parse(Raw) = %v, %v; not stable for %s", again, err2, ev.Raw)
		}
		_ = ev.Redact("12")
	})
}
