package rooms

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// testRoom builds a writer cache entry from state contents keyed by
// "type|state_key".
func testRoom(state map[string]string) *roomState {
	rs := &roomState{id: "!r:here", version: "11", creator: "@creator:here", state: map[authrules.StateKey]*stateEntry{}}
	for k, content := range state {
		typ, key, _ := strings.Cut(k, "|")
		rs.state[keyOf(typ, key)] = &stateEntry{ev: &pdu.Event{Type: typ, StateKey: strPtr(key), Content: json.RawMessage(content)}}
	}
	return rs
}

func TestLocalInviter(t *testing.T) {
	join := `{"membership":"join"}`
	cases := []struct {
		name  string
		state map[string]string
		want  string
	}{
		{"highest named level wins", map[string]string{
			"m.room.power_levels|":  `{"invite":50,"users":{"@a:here":50,"@b:here":100}}`,
			"m.room.member|@a:here": join, "m.room.member|@b:here": join}, "@b:here"},
		{"ties broken by user ID", map[string]string{
			"m.room.power_levels|":  `{"invite":50,"users":{"@z:here":100,"@b:here":100}}`,
			"m.room.member|@z:here": join, "m.room.member|@b:here": join}, "@b:here"},
		{"remote and departed users are skipped", map[string]string{
			"m.room.power_levels|":   `{"invite":50,"users":{"@r:there":100,"@gone:here":100,"@m:here":50}}`,
			"m.room.member|@r:there": join, "m.room.member|@gone:here": `{"membership":"leave"}`, "m.room.member|@m:here": join}, "@m:here"},
		{"below the invite level", map[string]string{
			"m.room.power_levels|":  `{"invite":50,"users":{"@a:here":49}}`,
			"m.room.member|@a:here": join, "m.room.member|@x:here": join}, ""},
		{"everyone may invite: first joined local member", map[string]string{
			"m.room.power_levels|":    `{"invite":0,"users":{"@low:here":-1}}`,
			"m.room.member|@low:here": join, "m.room.member|@k:here": join, "m.room.member|@c:here": join,
			"m.room.member|@i:here": `{"membership":"invite"}`}, "@c:here"},
	}
	for _, c := range cases {
		if got := testRoom(c.state).localInviter("here"); got != c.want {
			t.Errorf("%s: localInviter = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckClientState(t *testing.T) {
	me := "@me:here"
	cases := []struct {
		typ     string
		key     *string
		content string
		refused bool
	}{
		{"m.room.member", &me, `{"membership":"join"}`, false},
		{"m.room.member", &me, `{"membership":"join","join_authorised_via_users_server":"@a:here"}`, true},
		{"m.room.member", &me, `{"membership":"leave","join_authorised_via_users_server":null}`, true},
		{"m.room.member", &me, `{"membership":"invite","third_party_invite":{}}`, true},
		{"m.room.third_party_invite", strPtr("tok"), `{}`, true},
		{"m.room.topic", strPtr(""), `{"third_party_invite":1,"join_authorised_via_users_server":"x"}`, false},
	}
	for _, c := range cases {
		err := checkClientState(c.typ, c.key, json.RawMessage(c.content))
		if refused := errors.Is(err, ErrForbidden); refused != c.refused {
			t.Errorf("checkClientState(%s, %s) = %v, want refused %v", c.typ, c.content, err, c.refused)
		}
	}
}

// FuzzWithJoinAuthoriser: whatever object a client sent, the content the
// server signs is valid JSON naming the chosen authoriser, and no input
// panics.
func FuzzWithJoinAuthoriser(f *testing.F) {
	for _, s := range []string{`{"membership":"join"}`, `{}`, `[]`, `null`, `{"membership":"join","displayname":"\u0000"}`, `{"a":{"b":[1,2]}}`} {
		f.Add(s, "@a:here")
	}
	f.Fuzz(func(t *testing.T, content, via string) {
		out, err := withJoinAuthoriser(json.RawMessage(content), via)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("withJoinAuthoriser(%q) = %q: invalid JSON", content, out)
		}
		if got := gjson.GetBytes(out, "join_authorised_via_users_server"); got.Type != gjson.String {
			t.Fatalf("withJoinAuthoriser(%q, %q) = %s: no authoriser", content, via, out)
		}
	})
}
