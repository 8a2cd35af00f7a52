package pushrules

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

type fixedPower bool

func (p fixedPower) SenderMayNotify(key string) bool { return key == "room" && bool(p) }

// evalOne compiles a ruleset holding one override rule with conds and
// reports whether it matches ev.
func condMatches(t *testing.T, conds string, ev *Event) bool {
	t.Helper()
	r := Rule{RuleID: "r", Enabled: true, Actions: json.RawMessage(`["notify"]`), Conditions: json.RawMessage(conds)}
	return Compile(Ruleset{Override: []Rule{r}}).Eval(ev).Notify
}

func event(js string) *Event { return &Event{JSON: gjson.Parse(js), MemberCount: 3} }

func TestConditions(t *testing.T) {
	msg := `{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","content":{"body":"Hello World, Bob!","msgtype":"m.text",
		"m.relates_to":{"rel_type":"m.thread"},"m.mentions":{"user_ids":["@bob:x"],"room":true},"n":5,"f":false,"z":null,"arr":[1,"two",true,null],
		"a.b":{"c":"dotted"},"back\\slash":"yes","deep":{"x":{"y":"z"}}}}`
	state := `{"type":"m.room.name","sender":"@a:x","room_id":"!r:x","state_key":"","content":{"name":"N"}}`
	cases := []struct {
		name  string
		conds string
		ev    string
		dn    string
		count int
		power fixedPower
		want  bool
	}{
		// event_match
		{"match type", `[{"kind":"event_match","key":"type","pattern":"m.room.message"}]`, msg, "", 3, false, true},
		{"match whole value only", `[{"kind":"event_match","key":"type","pattern":"m.room"}]`, msg, "", 3, false, false},
		{"match case-insensitive", `[{"kind":"event_match","key":"type","pattern":"M.ROOM.MESSAGE"}]`, msg, "", 3, false, true},
		{"match star", `[{"kind":"event_match","key":"type","pattern":"m.room.*"}]`, msg, "", 3, false, true},
		{"match question", `[{"kind":"event_match","key":"sender","pattern":"@?:x"}]`, msg, "", 3, false, true},
		{"match question one char", `[{"kind":"event_match","key":"sender","pattern":"@??:x"}]`, msg, "", 3, false, false},
		{"match star any", `[{"kind":"event_match","key":"content.msgtype","pattern":"*"}]`, msg, "", 3, false, true},
		{"match star absent", `[{"kind":"event_match","key":"content.nope","pattern":"*"}]`, msg, "", 3, false, false},
		{"match non-string", `[{"kind":"event_match","key":"content.n","pattern":"5"}]`, msg, "", 3, false, false},
		{"match object", `[{"kind":"event_match","key":"content.deep","pattern":"*"}]`, msg, "", 3, false, false},
		{"match nested", `[{"kind":"event_match","key":"content.deep.x.y","pattern":"z"}]`, msg, "", 3, false, true},
		{"match escaped dot", `[{"kind":"event_match","key":"content.m\\.relates_to.rel_type","pattern":"m.thread"}]`, msg, "", 3, false, true},
		{"match unescaped dot misses", `[{"kind":"event_match","key":"content.m.relates_to.rel_type","pattern":"m.thread"}]`, msg, "", 3, false, false},
		{"match key with dot", `[{"kind":"event_match","key":"content.a\\.b.c","pattern":"dotted"}]`, msg, "", 3, false, true},
		{"match escaped backslash", `[{"kind":"event_match","key":"content.back\\\\slash","pattern":"yes"}]`, msg, "", 3, false, true},
		{"match state_key", `[{"kind":"event_match","key":"state_key","pattern":""}]`, state, "", 3, false, false},
		{"match empty pattern is literal", `[{"kind":"event_match","key":"content.name","pattern":""}]`, state, "", 3, false, false},
		{"match body word", `[{"kind":"event_match","key":"content.body","pattern":"world"}]`, msg, "", 3, false, true},
		{"match body part of word", `[{"kind":"event_match","key":"content.body","pattern":"worl"}]`, msg, "", 3, false, false},
		{"match body glob word", `[{"kind":"event_match","key":"content.body","pattern":"wor*"}]`, msg, "", 3, false, true},
		{"match body glob across words", `[{"kind":"event_match","key":"content.body","pattern":"hello*bob"}]`, msg, "", 3, false, true},
		{"match body glob inside word", `[{"kind":"event_match","key":"content.body","pattern":"ell*"}]`, msg, "", 3, false, false},
		{"match no key", `[{"kind":"event_match","pattern":"x"}]`, msg, "", 3, false, false},
		{"match no pattern", `[{"kind":"event_match","key":"type"}]`, msg, "", 3, false, false},
		// event_property_is
		{"is string", `[{"kind":"event_property_is","key":"content.msgtype","value":"m.text"}]`, msg, "", 3, false, true},
		{"is string case", `[{"kind":"event_property_is","key":"content.msgtype","value":"M.TEXT"}]`, msg, "", 3, false, false},
		{"is number", `[{"kind":"event_property_is","key":"content.n","value":5}]`, msg, "", 3, false, true},
		{"is number as string", `[{"kind":"event_property_is","key":"content.n","value":"5"}]`, msg, "", 3, false, false},
		{"is true", `[{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true}]`, msg, "", 3, false, true},
		{"is false", `[{"kind":"event_property_is","key":"content.f","value":false}]`, msg, "", 3, false, true},
		{"is false vs true", `[{"kind":"event_property_is","key":"content.f","value":true}]`, msg, "", 3, false, false},
		{"is null", `[{"kind":"event_property_is","key":"content.z","value":null}]`, msg, "", 3, false, true},
		{"is null absent", `[{"kind":"event_property_is","key":"content.nope","value":null}]`, msg, "", 3, false, false},
		{"is object value refused", `[{"kind":"event_property_is","key":"content.deep","value":{}}]`, msg, "", 3, false, false},
		// event_property_contains
		{"contains string", `[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@bob:x"}]`, msg, "", 3, false, true},
		{"contains other", `[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@carol:x"}]`, msg, "", 3, false, false},
		{"contains number", `[{"kind":"event_property_contains","key":"content.arr","value":1}]`, msg, "", 3, false, true},
		{"contains bool", `[{"kind":"event_property_contains","key":"content.arr","value":true}]`, msg, "", 3, false, true},
		{"contains null", `[{"kind":"event_property_contains","key":"content.arr","value":null}]`, msg, "", 3, false, true},
		{"contains not array", `[{"kind":"event_property_contains","key":"content.body","value":"Hello"}]`, msg, "", 3, false, false},
		// contains_display_name
		{"display name", `[{"kind":"contains_display_name"}]`, msg, "bob", 3, false, true},
		{"display name part of word", `[{"kind":"contains_display_name"}]`, msg, "Wor", 3, false, false},
		{"display name with space", `[{"kind":"contains_display_name"}]`, msg, "hello world", 3, false, true},
		{"display name none", `[{"kind":"contains_display_name"}]`, msg, "", 3, false, false},
		{"display name no body", `[{"kind":"contains_display_name"}]`, state, "N", 3, false, false},
		// room_member_count
		{"count bare", `[{"kind":"room_member_count","is":"2"}]`, msg, "", 2, false, true},
		{"count ==", `[{"kind":"room_member_count","is":"==2"}]`, msg, "", 3, false, false},
		{"count <", `[{"kind":"room_member_count","is":"<3"}]`, msg, "", 2, false, true},
		{"count < edge", `[{"kind":"room_member_count","is":"<3"}]`, msg, "", 3, false, false},
		{"count >", `[{"kind":"room_member_count","is":">10"}]`, msg, "", 11, false, true},
		{"count <=", `[{"kind":"room_member_count","is":"<=3"}]`, msg, "", 3, false, true},
		{"count >=", `[{"kind":"room_member_count","is":">=4"}]`, msg, "", 3, false, false},
		{"count junk", `[{"kind":"room_member_count","is":"two"}]`, msg, "", 2, false, false},
		{"count missing", `[{"kind":"room_member_count"}]`, msg, "", 2, false, false},
		// sender_notification_permission
		{"permission allowed", `[{"kind":"sender_notification_permission","key":"room"}]`, msg, "", 3, true, true},
		{"permission refused", `[{"kind":"sender_notification_permission","key":"room"}]`, msg, "", 3, false, false},
		{"permission other key", `[{"kind":"sender_notification_permission","key":"other"}]`, msg, "", 3, true, false},
		// lists
		{"no conditions", `[]`, msg, "", 3, false, true},
		{"all must match", `[{"kind":"event_match","key":"type","pattern":"m.room.message"},{"kind":"room_member_count","is":"2"}]`, msg, "", 3, false, false},
		{"unknown kind", `[{"kind":"org.example.future"}]`, msg, "", 3, false, false},
		{"not a list", `{"kind":"event_match"}`, msg, "", 3, false, false},
	}
	for _, tc := range cases {
		ev := event(tc.ev)
		ev.DisplayName, ev.MemberCount, ev.Power = tc.dn, tc.count, tc.power
		if got := condMatches(t, tc.conds, ev); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestActions(t *testing.T) {
	cases := []struct {
		actions string
		want    string // notify/highlight/sound/tweaks
	}{
		{`["notify"]`, "true/false//{}"},
		{`[]`, "false/false//{}"},
		{`["dont_notify"]`, "false/false//{}"},
		{`["coalesce"]`, "false/false//{}"},
		{`["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]`, `true/true/default/{"highlight":true,"sound":"default"}`},
		{`["notify",{"set_tweak":"highlight","value":false}]`, `true/false//{"highlight":false}`},
		{`["notify",{"set_tweak":"sound","value":5}]`, `true/false//{}`},
		{`["notify",{"set_tweak":"org.example","value":{"a":1}}]`, `true/false//{"org.example":{"a":1}}`},
		{`"notify"`, "false/false//{}"},
	}
	for _, tc := range cases {
		a := compileActions("r", json.RawMessage(tc.actions))
		if got := fmt.Sprintf("%v/%v/%s/%s", a.Notify, a.Highlight, a.Sound, a.Tweaks); got != tc.want {
			t.Errorf("actions %s = %s, want %s", tc.actions, got, tc.want)
		}
	}
}

// TestEvalOrder: the spec's order of kinds, user rules before defaults,
// disabled rules skipped, and the legacy mention rules skipped for events
// with m.mentions.
func TestEvalOrder(t *testing.T) {
	me := "@bob:x"
	msg := func(body string, extra string) *Event {
		ev := event(`{"type":"m.room.message","sender":"@alice:x","room_id":"!r:x","content":{"msgtype":"m.text","body":"` + body + `"` + extra + `}}`)
		ev.DisplayName = "Bobby"
		return ev
	}
	doc := func(js string) *document {
		d, err := parse(me, js)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name, doc string
		ev        *Event
		want      string // rule/notify
	}{
		{"plain message", ``, msg("hi", ""), ".m.rule.message/true"},
		{"one to one", ``, func() *Event { e := msg("hi", ""); e.MemberCount = 2; return e }(), ".m.rule.room_one_to_one/true"},
		{"user name", ``, msg("hey bob!", ""), ".m.rule.contains_user_name/true"},
		{"display name", ``, msg("hey Bobby", ""), ".m.rule.contains_display_name/true"},
		{"legacy skipped with m.mentions", ``, msg("hey Bobby", `,"m.mentions":{}`), ".m.rule.message/true"},
		{"intentional mention", ``, msg("x", `,"m.mentions":{"user_ids":["@bob:x"]}`), ".m.rule.is_user_mention/true"},
		{"notice", ``, func() *Event {
			e := msg("hey bob", "")
			e.JSON = gjson.Parse(strings.Replace(e.JSON.Raw, "m.text", "m.notice", 1))
			return e
		}(), ".m.rule.suppress_notices/false"},
		{"master on", `{"defaults":{"override/.m.rule.master":{"enabled":true}}}`, msg("hey bob", ""), ".m.rule.master/false"},
		{"default disabled", `{"defaults":{"underride/.m.rule.message":{"enabled":false}}}`, msg("hi", ""), "/false"},
		{"default actions changed", `{"defaults":{"underride/.m.rule.message":{"actions":[]}}}`, msg("hi", ""), ".m.rule.message/false"},
		{"content before room", `{"user":{"content":[{"rule_id":"kw","enabled":true,"pattern":"cake","actions":["notify"]}],
			"room":[{"rule_id":"!r:x","enabled":true,"actions":[]}]}}`, msg("cake!", ""), "kw/true"},
		{"room before sender", `{"user":{"room":[{"rule_id":"!r:x","enabled":true,"actions":[]}],
			"sender":[{"rule_id":"@alice:x","enabled":true,"actions":["notify"]}]}}`, msg("hi", ""), "!r:x/false"},
		{"sender rule", `{"user":{"sender":[{"rule_id":"@alice:x","enabled":true,"actions":[]}]}}`, msg("hi", ""), "@alice:x/false"},
		{"other room", `{"user":{"room":[{"rule_id":"!other:x","enabled":true,"actions":[]}]}}`, msg("hi", ""), ".m.rule.message/true"},
		{"disabled user rule", `{"user":{"room":[{"rule_id":"!r:x","enabled":false,"actions":[]}]}}`, msg("hi", ""), ".m.rule.message/true"},
		{"user override before defaults", `{"user":{"override":[{"rule_id":"o","enabled":true,"conditions":[],"actions":[]}]}}`,
			msg("hey bob", ""), "o/false"},
		{"master before user override", `{"defaults":{"override/.m.rule.master":{"enabled":true}},"user":{"override":[{"rule_id":"o","enabled":true,"conditions":[],"actions":["notify"]}]}}`,
			msg("hi", ""), ".m.rule.master/false"},
		{"user underride before defaults", `{"user":{"underride":[{"rule_id":"u","enabled":true,"conditions":[],"actions":["notify",{"set_tweak":"sound","value":"x"}]}]}}`,
			msg("hi", ""), "u/true"},
	}
	for _, tc := range cases {
		e := Compile(merge(me, doc(tc.doc)))
		a := e.Eval(tc.ev)
		if got := fmt.Sprintf("%s/%v", a.RuleID, a.Notify); got != tc.want {
			t.Errorf("%s: eval = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSplitKey(t *testing.T) {
	for key, want := range map[string]string{
		"type":                           "type",
		"content.body":                   "content|body",
		`content.m\.relates_to.rel_type`: "content|m.relates_to|rel_type",
		`a\\.b`:                          `a\|b`,
		`a\\\.b`:                         `a\.b`,
		`a\b`:                            `a\b`,
		`a.`:                             "a|",
		`trailing\`:                      `trailing\`,
		"":                               "",
	} {
		if got := strings.Join(splitKey(key), "|"); got != want {
			t.Errorf("splitKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestContainsWord(t *testing.T) {
	for _, tc := range []struct {
		s, w string
		want bool
	}{
		{"hello bob", "bob", true},
		{"hello bobby", "bob", false},
		{"BOB!", "bob", true},
		{"(bob)", "bob", true},
		{"_bob", "bob", false},
		{"ébob", "bob", false},
		{"é bob é", "bob", true},
		{"bo", "bob", false},
		{"", "bob", false},
		{"x", "", false},
		{"hi @room", "@room", true},
		{"hi@room", "@room", false},
	} {
		if got := containsWord(tc.s, tc.w); got != tc.want {
			t.Errorf("containsWord(%q, %q) = %v, want %v", tc.s, tc.w, got, tc.want)
		}
	}
}

// FuzzSplitKeyPath: whatever the key, a property stored under the parts
// splitKey finds is found again by the compiled path, and nothing panics.
func FuzzSplitKeyPath(f *testing.F) {
	for _, s := range []string{"type", "content.body", `content.m\.relates_to.rel_type`, `a\\.b`, `a..b`, `*.?`, `a|b.#.@this`, `\`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !utf8.ValidString(key) {
			return // rules and events are JSON: their strings are valid UTF-8
		}
		parts := splitKey(key)
		var v any = "found"
		for i := len(parts) - 1; i >= 0; i-- {
			v = map[string]any{parts[i]: v}
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := compilePath(key).get(gjson.ParseBytes(js))
		if got.Str != "found" {
			t.Fatalf("path %q (parts %q) in %s = %q, want found", key, parts, js, got.Raw)
		}
	})
}

// FuzzGlob: compiling any pattern works, and matching never panics; a
// pattern without wildcards matches itself (also in a body, alone).
func FuzzGlob(f *testing.F) {
	for _, s := range []string{"cake", "m.room.*", "@?:x", "*", "", "a*b?c", `\*`, "(", "[a-z]", "é*"} {
		f.Add(s, "some value")
	}
	f.Fuzz(func(t *testing.T, pattern, value string) {
		if !utf8.ValidString(pattern) {
			return // rules are JSON: their strings are valid UTF-8
		}
		if w := strings.ReplaceAll(strings.ReplaceAll(pattern, "*", ""), "?", ""); w != "" && isASCII(w) && isASCII(value) {
			// containsWord agrees with the regular expression Synapse uses.
			re := regexp.MustCompile(`(?is)(?:^|[^\p{L}\p{N}_])` + regexp.QuoteMeta(w) + `(?:[^\p{L}\p{N}_]|$)`)
			if got, want := containsWord(value, w), re.MatchString(value); got != want {
				t.Fatalf("containsWord(%q, %q) = %v, want %v", value, w, got, want)
			}
		}
		for _, words := range []bool{false, true} {
			g := compileGlob(pattern, words)
			g.match(value)
			if pattern != "" && !strings.ContainsAny(pattern, "*?") && !g.match(pattern) {
				t.Fatalf("glob %q (words %v) does not match itself", pattern, words)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzParseCount: any "is" is parsed or refused, never a panic, and what
// is parsed compares as the operator says.
func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"2", "==2", "<3", ">=10", "<=0", ">", "x", "-1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, is string) {
		c, ok := parseCount(is)
		if !ok {
			return
		}
		if c.n < 0 {
			t.Fatalf("parseCount(%q) = %d, want non-negative", is, c.n)
		}
		if c.op == "==" && !c.match(c.n) {
			t.Fatalf("parseCount(%q) does not match %d", is, c.n)
		}
	})
}

// BenchmarkEvalMessage: one member's whole ruleset (the defaults plus a
// keyword, a muted room and a silenced sender, as a typical client sets
// them) against a plain message that ends at .m.rule.message: every rule is
// tried. Allocations must stay at zero.
func BenchmarkEvalMessage(b *testing.B) {
	d, err := parse("@bob:example.org", `{"user":{
		"content":[{"rule_id":"kw","enabled":true,"pattern":"cake*","actions":["notify",{"set_tweak":"highlight"}]}],
		"room":[{"rule_id":"!muted:example.org","enabled":true,"actions":[]}],
		"sender":[{"rule_id":"@noisy:example.org","enabled":true,"actions":[]}]}}`)
	if err != nil {
		b.Fatal(err)
	}
	e := Compile(merge("@bob:example.org", d))
	ev := &Event{JSON: gjson.Parse(`{"type":"m.room.message","sender":"@alice:example.org","room_id":"!r:example.org",
		"event_id":"$e","origin_server_ts":1,"content":{"msgtype":"m.text","body":"Shall we meet at the station at six, or later?"}}`),
		MemberCount: 12, DisplayName: "Bob Builder", Power: fixedPower(false)}
	for _, fresh := range []bool{true, false} {
		// The first member of a room to evaluate an event reads its
		// properties; the next ones find them cached in the Event.
		name := map[bool]string{true: "first_member", false: "next_members"}[fresh]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if fresh {
					ev.nprops = 0
				}
				if a := e.Eval(ev); a.RuleID != ".m.rule.message" {
					b.Fatalf("matched %s, want .m.rule.message", a.RuleID)
				}
			}
		})
	}
}

func gjsonParse(s string) gjson.Result { return gjson.Parse(s) }
