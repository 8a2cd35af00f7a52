package pdu

import (
	"encoding/json"
	"testing"
)

// redactionCase is one content and what each room version keeps of it.
type redactionCase struct {
	eventType, content, want10, want11 string
}

func redactionCases() []redactionCase {
	tpi := `"third_party_invite":{"display_name":"Bob","signed":{"mxid":"@bob:b.org","signatures":{"id.org":{"ed25519:0":"sig"}},"token":"tok"}}`
	return []redactionCase{
		{"m.room.member",
			`{"membership":"join","displayname":"Alice","avatar_url":"mxc://a/b","join_authorised_via_users_server":"@mod:example.org","reason":"hi"}`,
			`{"join_authorised_via_users_server":"@mod:example.org","membership":"join"}`,
			`{"join_authorised_via_users_server":"@mod:example.org","membership":"join"}`},
		{"m.room.member", `{"membership":"invite",` + tpi + `}`,
			`{"membership":"invite"}`,
			`{"membership":"invite","third_party_invite":{"signed":{"mxid":"@bob:b.org","signatures":{"id.org":{"ed25519:0":"sig"}},"token":"tok"}}}`},
		{"m.room.member", `{"membership":"invite","third_party_invite":{"display_name":"Bob"}}`,
			`{"membership":"invite"}`, `{"membership":"invite","third_party_invite":{}}`},
		{"m.room.member", `{"membership":"invite","third_party_invite":"junk"}`,
			`{"membership":"invite"}`, `{"membership":"invite"}`},
		{"m.room.create", `{"creator":"@a:example.org","room_version":"10","m.federate":false,"predecessor":{"room_id":"!old:example.org"}}`,
			`{"creator":"@a:example.org"}`,
			`{"creator":"@a:example.org","m.federate":false,"predecessor":{"room_id":"!old:example.org"},"room_version":"10"}`},
		{"m.room.join_rules", `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!s:example.org"}],"extra":1}`,
			`{"allow":[{"room_id":"!s:example.org","type":"m.room_membership"}],"join_rule":"restricted"}`,
			`{"allow":[{"room_id":"!s:example.org","type":"m.room_membership"}],"join_rule":"restricted"}`},
		{"m.room.power_levels", `{"ban":50,"events":{"m.room.name":50},"events_default":0,"invite":0,"kick":50,"notifications":{"room":50},"redact":50,"state_default":50,"users":{"@a:example.org":100},"users_default":0}`,
			`{"ban":50,"events":{"m.room.name":50},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{"@a:example.org":100},"users_default":0}`,
			`{"ban":50,"events":{"m.room.name":50},"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users":{"@a:example.org":100},"users_default":0}`},
		{"m.room.history_visibility", `{"history_visibility":"shared","x":1}`, `{"history_visibility":"shared"}`, `{"history_visibility":"shared"}`},
		{"m.room.redaction", `{"redacts":"$abc","reason":"spam"}`, `{}`, `{"redacts":"$abc"}`},
		{"m.room.aliases", `{"aliases":["#a:example.org"]}`, `{}`, `{}`},
		{"m.room.message", `{"body":"secret","msgtype":"m.text"}`, `{}`, `{}`},
		{"m.room.name", `{"name":"Room"}`, `{}`, `{}`},
		{"m.room.message", `not json`, `{}`, `{}`},
		{"m.room.create", `[1]`, `{}`, `{}`},
	}
}

func TestRedactContent(t *testing.T) {
	for _, tt := range redactionCases() {
		for v, want := range map[string]string{"10": tt.want10, "11": tt.want11} {
			if got := RedactContent(tt.eventType, json.RawMessage(tt.content), v); string(got) != want {
				t.Errorf("RedactContent(%s, %s, v%s) = %s, want %s", tt.eventType, tt.content, v, got, want)
			}
		}
	}
}

func TestRedactEvent(t *testing.T) {
	p := message()
	p.Type, p.StateKey = "m.room.member", strPtr("@alice:example.org")
	p.Content = json.RawMessage(`{"membership":"join","displayname":"Alice"}`)
	for _, v := range []string{"10", "11"} {
		ev := mustBuild(t, p, v)
		red := ev.Redact(v)
		if red.ID != ev.ID || string(red.Content) != `{"membership":"join"}` || red.StateKeyOr("") != "@alice:example.org" {
			t.Errorf("Redact(v%s) = %+v, want same ID, membership only", v, red)
		}
		again, err := Parse(red.Raw, v)
		if err == nil || again == nil || again.ID != ev.ID || string(again.Raw) != string(red.Raw) {
			t.Errorf("Parse(redacted v%s) = %v, %v, want ErrBadHash with the same redacted event", v, again, err)
		}
		if err := red.VerifySignature(v, "example.org", "ed25519:test", testKey("example.org").Public()); err != nil {
			t.Errorf("VerifySignature(redacted v%s) = %v, want nil", v, err)
		}
		if twice := red.Redact(v); string(twice.Raw) != string(red.Raw) {
			t.Errorf("Redact is not idempotent for v%s: %s then %s", v, red.Raw, twice.Raw)
		}
	}
}
