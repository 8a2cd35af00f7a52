package pushrules

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func ruleIDs(rules []Rule) string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.RuleID
	}
	return strings.Join(ids, ",")
}

func TestDefaultPushRulesShape(t *testing.T) {
	rs := defaults("@alice:example.org")
	wantOverride := ".m.rule.master,.m.rule.suppress_notices,.m.rule.invite_for_me,.m.rule.member_event," +
		".m.rule.is_user_mention,.m.rule.contains_display_name,.m.rule.is_room_mention,.m.rule.roomnotif," +
		".m.rule.tombstone,.m.rule.reaction,.m.rule.room.server_acl,.m.rule.suppress_edits"
	if got := ruleIDs(rs.Override); got != wantOverride {
		t.Errorf("override = %s", got)
	}
	wantUnderride := ".m.rule.call,.m.rule.encrypted_room_one_to_one,.m.rule.room_one_to_one,.m.rule.message,.m.rule.encrypted"
	if got := ruleIDs(rs.Underride); got != wantUnderride {
		t.Errorf("underride = %s", got)
	}
	if len(rs.Content) != 1 || *rs.Content[0].Pattern != "alice" || rs.Content[0].Conditions != nil {
		t.Errorf("content = %+v", rs.Content)
	}

	body, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string][]map[string]any
	if err := json.Unmarshal(body, &wire); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"override", "content", "room", "sender", "underride"} {
		if wire[kind] == nil {
			t.Errorf("%s is missing or null in %s", kind, body)
		}
	}
	master := wire["override"][0]
	if master["enabled"] != false || master["default"] != true || len(master["conditions"].([]any)) != 0 || len(master["actions"].([]any)) != 0 {
		t.Errorf("master = %v", master)
	}
	invite := wire["override"][2]["conditions"].([]any)[2].(map[string]any)
	if invite["pattern"] != "@alice:example.org" {
		t.Errorf("invite_for_me state_key = %v", invite)
	}
	mention := wire["override"][4]["conditions"].([]any)[0].(map[string]any)
	if mention["key"] != `content.m\.mentions.user_ids` || mention["value"] != "@alice:example.org" {
		t.Errorf("is_user_mention condition = %v", mention)
	}
	roomMention := wire["override"][6]["conditions"].([]any)[0].(map[string]any)
	if roomMention["value"] != true {
		t.Errorf("is_room_mention must match value true, got %v", roomMention)
	}
}

func TestMergePushRules(t *testing.T) {
	off, on := false, true
	doc := &document{
		User: map[string][]Rule{
			"override": {{RuleID: "mine", Enabled: true, Actions: json.RawMessage(`[]`), Conditions: json.RawMessage(`[]`)}},
			"room":     {{RuleID: "!r:example.org", Enabled: true, Actions: json.RawMessage(`[]`)}},
		},
		Defaults: map[string]ruleChange{
			"override/.m.rule.master":            {Enabled: &on},
			"underride/.m.rule.message":          {Actions: json.RawMessage(`[]`)},
			"content/.m.rule.contains_user_name": {Enabled: &off},
			"override/.m.rule.message":           {Enabled: &off}, // wrong kind: ignored
		},
	}
	rs := merge("@alice:example.org", doc)
	if got := ruleIDs(rs.Override[:3]); got != ".m.rule.master,mine,.m.rule.suppress_notices" {
		t.Errorf("override order = %s", got)
	}
	if !rs.Override[0].Enabled {
		t.Error("master change not applied")
	}
	if msg := rs.find("underride", ".m.rule.message"); msg == nil || string(msg.Actions) != `[]` || !msg.Enabled {
		t.Errorf(".m.rule.message = %+v", msg)
	}
	if rs.Content[0].Enabled {
		t.Error("content change not applied")
	}
	if rs.find("room", "!r:example.org") == nil || rs.find("room", "!other:example.org") != nil {
		t.Error("room rule lookup")
	}
	// The defaults are rebuilt per call, not shared.
	if defaults("@alice:example.org").Override[0].Enabled {
		t.Error("merge changed the defaults")
	}
}

func TestPlaceRule(t *testing.T) {
	mk := func(ids ...string) []Rule {
		var out []Rule
		for _, id := range ids {
			out = append(out, Rule{RuleID: id, Enabled: id != "b"})
		}
		return out
	}
	cases := []struct {
		rules        []Rule
		id, bef, aft string
		want         string
		err          error
	}{
		{mk("a", "b"), "n", "", "", "n,a,b", nil},
		{mk("a", "b"), "n", "b", "", "a,n,b", nil},
		{mk("a", "b"), "n", "", "a", "a,n,b", nil},
		{mk("a", "b"), "n", "", "b", "a,b,n", nil},
		{mk("a", "b"), "n", "a", "b", "n,a,b", nil}, // before wins
		{mk("a", "b", "c"), "b", "", "", "a,b,c", nil},
		{mk("a", "b", "c"), "c", "a", "", "c,a,b", nil},
		{mk("a"), "n", "zz", "", "", ErrAnchorNotFound},
		{mk("a"), "n", ".m.rule.master", "", "", ErrInvalidParam},
	}
	for _, c := range cases {
		got, err := placeRule(c.rules, Rule{RuleID: c.id, Enabled: true}, c.bef, c.aft)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s before=%q after=%q: err %v, want %v", c.id, c.bef, c.aft, err, c.err)
			}
			continue
		}
		if err != nil || ruleIDs(got) != c.want {
			t.Errorf("%s before=%q after=%q: %s %v, want %s", c.id, c.bef, c.aft, ruleIDs(got), err, c.want)
		}
	}
	got, _ := placeRule(mk("a", "b"), Rule{RuleID: "b", Enabled: true}, "", "")
	if got[1].Enabled {
		t.Error("replacing a rule must keep its enabled flag")
	}
}

func TestCheckActionsAndConditions(t *testing.T) {
	good := []string{`[]`, `["notify"]`, `["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]`, `["dont_notify"]`}
	for _, g := range good {
		if _, err := CheckActions(json.RawMessage(g)); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	bad := map[string]error{``: ErrMissingParam, `null`: ErrMissingParam, `{}`: ErrBadJSON, `[1]`: ErrBadJSON,
		`["explode"]`: ErrInvalidParam, `[{"value": 1}]`: ErrBadJSON, `[{"set_tweak": 3}]`: ErrBadJSON}
	for b, want := range bad {
		if _, err := CheckActions(json.RawMessage(b)); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", b, err, want)
		}
	}
	if c, err := checkConditions(nil); err != nil || string(c) != `[]` {
		t.Errorf("absent conditions: %s %v", c, err)
	}
	if c, err := checkConditions(json.RawMessage(`[ {"kind": "event_match", "key": "room_id", "pattern": "!a:b"} ]`)); err != nil || !strings.HasPrefix(string(c), `[{"kind"`) {
		t.Errorf("conditions: %s %v", c, err)
	}
	for _, b := range []string{`{}`, `["x"]`, `[{}]`, `[{"kind": 1}]`, `[null]`} {
		if _, err := checkConditions(json.RawMessage(b)); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
}

func TestMutedRoomsIn(t *testing.T) {
	doc := &document{User: map[string][]Rule{
		"room": {
			{RuleID: "!quiet:x", Enabled: true, Actions: json.RawMessage(`["dont_notify"]`)},
			{RuleID: "!loud:x", Enabled: true, Actions: json.RawMessage(`["notify"]`)},
			{RuleID: "!off:x", Enabled: false, Actions: json.RawMessage(`[]`)},
		},
		"override": {
			{RuleID: "!muted:x", Enabled: true, Actions: json.RawMessage(`[]`),
				Conditions: json.RawMessage(`[{"kind":"event_match","key":"room_id","pattern":"!muted:x"}]`)},
			{RuleID: "other", Enabled: true, Actions: json.RawMessage(`[]`),
				Conditions: json.RawMessage(`[{"kind":"event_match","key":"room_id","pattern":"!two:x"},{"kind":"event_match","key":"type","pattern":"m.room.message"}]`)},
			{RuleID: "glob", Enabled: true, Actions: json.RawMessage(`[]`),
				Conditions: json.RawMessage(`[{"kind":"event_match","key":"room_id","pattern":"*"}]`)},
		},
	}}
	got := mutedRoomsIn(doc)
	if len(got) != 2 || !got["!quiet:x"] || !got["!muted:x"] {
		t.Errorf("muted = %v", got)
	}
	if len(mutedRoomsIn(&document{})) != 0 {
		t.Error("empty document mutes nothing")
	}
}
