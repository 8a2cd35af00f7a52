package pdu

import (
	"strings"
	"testing"
)

func TestValidIdentifiers(t *testing.T) {
	tests := []struct {
		fn   func(string) bool
		name string
		in   string
		want bool
	}{
		{ValidUserID, "ValidUserID", "@alice:example.org", true},
		{ValidUserID, "ValidUserID", "@a.b_c=d-e/f+g:example.org:8448", true},
		{ValidUserID, "ValidUserID", "@Alice:example.org", true}, // historical
		{ValidUserID, "ValidUserID", "@алиса!*:example.org", true},
		{ValidUserID, "ValidUserID", "@:example.org", true},
		{ValidUserID, "ValidUserID", "@a:[::1]:8448", true},
		{ValidUserID, "ValidUserID", "@a:1.2.3.4", true},
		{ValidUserID, "ValidUserID", "@a\x00b:example.org", false},
		{ValidUserID, "ValidUserID", "@a\xff:example.org", false},
		{ValidUserID, "ValidUserID", "alice:example.org", false},
		{ValidUserID, "ValidUserID", "@alice", false},
		{ValidUserID, "ValidUserID", "@alice:", false},
		{ValidUserID, "ValidUserID", "@alice:exa mple.org", false},
		{ValidUserID, "ValidUserID", "@alice:example.org:port", false},
		{ValidUserID, "ValidUserID", "@alice:example.org:123456", false},
		{ValidUserID, "ValidUserID", "@" + strings.Repeat("a", 242) + ":example.org", true}, // 255 bytes
		{ValidUserID, "ValidUserID", "@" + strings.Repeat("a", 243) + ":example.org", false},
		{ValidLocalpart, "ValidLocalpart", "alice.b_c=d-e/f+9", true},
		{ValidLocalpart, "ValidLocalpart", "Alice", false},
		{ValidLocalpart, "ValidLocalpart", "", false},
		{ValidLocalpart, "ValidLocalpart", "a:b", false},
		{ValidRoomID, "ValidRoomID", "!abcDEF123:example.org", true},
		{ValidRoomID, "ValidRoomID", "!:example.org", false},
		{ValidRoomID, "ValidRoomID", "!abc", false},
		{ValidRoomID, "ValidRoomID", "!" + strings.Repeat("a", 43), true}, // room version 12
		{ValidRoomID, "ValidRoomID", "!" + strings.Repeat("a", 42), false},
		{ValidRoomID, "ValidRoomID", "!" + strings.Repeat("a", 42) + "=", false},
		{ValidRoomID, "ValidRoomID", "#abc:example.org", false},
		{ValidRoomID, "ValidRoomID", "!" + strings.Repeat("a", 243) + ":example.org", false},
		{ValidRoomAlias, "ValidRoomAlias", "#room:example.org", true},
		{ValidRoomAlias, "ValidRoomAlias", "#ルーム:example.org", true},
		{ValidRoomAlias, "ValidRoomAlias", "#:example.org", false},
		{ValidRoomAlias, "ValidRoomAlias", "#room", false},
		{ValidRoomAlias, "ValidRoomAlias", "!room:example.org", false},
		{ValidServerName, "ValidServerName", "example.org", true},
		{ValidServerName, "ValidServerName", "localhost:8008", true},
		{ValidServerName, "ValidServerName", "[1234:5678::abcd]:5678", true},
		{ValidServerName, "ValidServerName", "[1234:5678::abcd]", true},
		{ValidServerName, "ValidServerName", "[]", false},
		{ValidServerName, "ValidServerName", "[::1", false},
		{ValidServerName, "ValidServerName", "[::1]x", false},
		{ValidServerName, "ValidServerName", "[::g]", false},
		{ValidServerName, "ValidServerName", ":8008", false},
		{ValidServerName, "ValidServerName", "example.org:", false},
		{ValidServerName, "ValidServerName", "exa_mple.org", false},
		{ValidServerName, "ValidServerName", "", false},
		{ValidEventID, "ValidEventID", fakeID("x"), true},
		{ValidEventID, "ValidEventID", "$" + strings.Repeat("A", 43), true},
		{ValidEventID, "ValidEventID", "$" + strings.Repeat("A", 42) + "+", false},
		{ValidEventID, "ValidEventID", "$" + strings.Repeat("A", 42), false},
		{ValidEventID, "ValidEventID", "$abc:example.org", false},
		{ValidEventType, "ValidEventType", "m.room.message", true},
		{ValidEventType, "ValidEventType", "", false},
		{ValidEventType, "ValidEventType", strings.Repeat("t", 256), false},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("%s(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{"@a:example.org": "example.org", "!r:h:8448": "h:8448", "@nocolon": ""} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSupported(t *testing.T) {
	if !Supported(DefaultRoomVersion) {
		t.Errorf("Supported(DefaultRoomVersion %q) = false, want true", DefaultRoomVersion)
	}
	for v, want := range map[string]bool{"10": true, "11": true, "9": false, "12": true, "13": false, "": false} {
		if got := Supported(v); got != want {
			t.Errorf("Supported(%q) = %v, want %v", v, got, want)
		}
	}
}
