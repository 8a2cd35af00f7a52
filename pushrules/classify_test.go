package pushrules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

func TestClassify(t *testing.T) {
	empty := ""
	bob := "@bob:example.org"
	cases := []struct {
		name, typ, content string
		stateKey           *string
		mayNotifyRoom      bool
		want               string // notify/roomMention/mentions
	}{
		{"message", "m.room.message", `{"msgtype":"m.text","body":"hi"}`, nil, false, "true/false/"},
		{"notice", "m.room.message", `{"msgtype":"m.notice","body":"hi"}`, nil, false, "false/false/"},
		{"encrypted", "m.room.encrypted", `{}`, nil, false, "true/false/"},
		{"call invite", "m.call.invite", `{}`, nil, false, "true/false/"},
		{"member", "m.room.member", `{"membership":"join"}`, &bob, false, "false/false/"},
		{"reaction", "m.reaction", `{}`, nil, false, "false/false/"},
		{"edit", "m.room.message", `{"body":"x","m.relates_to":{"rel_type":"m.replace"}}`, nil, false, "false/false/"},
		{"user mention", "m.room.message", `{"body":"x","m.mentions":{"user_ids":["@bob:example.org","@alice:example.org","bad"]}}`, nil, false, "true/false/@bob:example.org"},
		{"room mention allowed", "m.room.message", `{"body":"x","m.mentions":{"room":true}}`, nil, true, "true/true/"},
		{"room mention refused", "m.room.message", `{"body":"x","m.mentions":{"room":true}}`, nil, false, "true/false/"},
		{"legacy @room", "m.room.message", `{"body":"hey @room"}`, nil, true, "true/true/"},
		{"legacy @room ignored with m.mentions", "m.room.message", `{"body":"hey @room","m.mentions":{}}`, nil, true, "true/false/"},
		{"tombstone", "m.room.tombstone", `{}`, &empty, false, "false/true/"},
		{"state message", "m.room.message", `{}`, &empty, false, "false/false/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := &pdu.Event{Sender: "@alice:example.org", Type: c.typ, StateKey: c.stateKey, Content: json.RawMessage(c.content)}
			got := Classify(ev, func() bool { return c.mayNotifyRoom })
			s := strings.Join([]string{boolStr(got.Notify), boolStr(got.RoomMention), strings.Join(got.Mentions, ",")}, "/")
			if s != c.want {
				t.Errorf("Classify = %s, want %s", s, c.want)
			}
		})
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
