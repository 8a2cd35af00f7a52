package pushrules

// Evaluation of a user's whole ruleset, for push delivery.
//
// Parley evaluates rules with its own code rather than mautrix-go's
// pushrules package (v0.33.0 builds without the jsonv2 experiment): that
// package evaluates an *event.Event whose content is decoded into a
// map[string]any, compiles each glob again on every match, runs a regular
// expression per member-count test, and treats every event_match pattern
// as a substring match (so "type" = "m.room.member" would match any type
// containing it). Here a ruleset is compiled once per user (globs, paths,
// counts, actions and the tweaks JSON), cached with the user's rules and
// dropped on every edit, and applied to the raw client-format event with
// gjson: no decoding, and no allocation per member.

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// Actions is what the first matching rule asks for.
type Actions struct {
	RuleID    string // the rule that matched; "" if none did
	Notify    bool   // the rule's actions hold "notify"
	Highlight bool   // set_tweak highlight (true unless value is false)
	Sound     string // set_tweak sound
	// Tweaks are every set_tweak of the rule as a JSON object, for the
	// push gateway's devices[].tweaks ({} when none). Shared: read only.
	Tweaks json.RawMessage
}

// Permission answers sender_notification_permission for one event: whether
// the sender's power level reaches notifications.<key> in the room.
type Permission interface {
	SenderMayNotify(key string) bool
}

// Event is an event as one user's rules see it.
type Event struct {
	// JSON is the client-format event (type, sender, room_id, state_key,
	// content, ...), parsed once per event and shared by every member.
	JSON gjson.Result
	// MemberCount is the room's joined member count.
	MemberCount int
	// DisplayName is the user's display name in the room ("" if none).
	DisplayName string
	// Power answers sender_notification_permission; nil never matches.
	Power Permission

	// props caches the properties looked up so far (by key), so that the
	// many members evaluating one event, and the rules of one member that
	// read the same key, walk the JSON once per key. Written by Eval: an
	// Event is for one goroutine at a time. A fresh Event starts empty.
	props  [16]prop
	nprops int
}

type prop struct {
	key string
	val gjson.Result
}

// get returns the property at p, from the cache if it was looked up.
func (ev *Event) get(p *path) gjson.Result {
	for i := 0; i < ev.nprops; i++ {
		if ev.props[i].key == p.key {
			return ev.props[i].val
		}
	}
	v := p.get(ev.JSON)
	if ev.nprops < len(ev.props) {
		ev.props[ev.nprops] = prop{key: p.key, val: v}
		ev.nprops++
	}
	return v
}

// Evaluator is a user's ruleset compiled for evaluation. Immutable:
// goroutines share it.
type Evaluator struct {
	rules []compiled // enabled rules, in the spec's order of kinds
}

type compiled struct {
	legacy  bool // a legacy mention rule: skipped when content has m.mentions
	conds   []condition
	actions Actions
}

type condKind uint8

const (
	condNever       condKind = iota // unknown or malformed: the rule never matches
	condMatch                       // event_match
	condEquals                      // a room or sender rule: the property equals str exactly
	condIs                          // event_property_is
	condContains                    // event_property_contains
	condDisplayName                 // contains_display_name
	condMemberCount                 // room_member_count
	condPermission                  // sender_notification_permission
)

type condition struct {
	kind  condKind
	path  path
	glob  *glob
	str   string       // condEquals: the value; condPermission: the key
	value gjson.Result // condIs, condContains
	count countTest
}

// legacyMentionRules are the rules the spec (v1.7, MSC3952) skips for an
// event that has an m.mentions property: intentional mentions replace them.
var legacyMentionRules = map[string]bool{
	".m.rule.contains_display_name": true,
	".m.rule.contains_user_name":    true,
	".m.rule.roomnotif":             true,
}

// Compile builds the evaluator of a merged ruleset (see merge). Rules that
// are disabled are left out; a rule whose conditions cannot be read never
// matches, as the spec says of unknown conditions.
func Compile(rs Ruleset) *Evaluator {
	e := &Evaluator{}
	add := func(r *Rule, conds []condition) {
		if !r.Enabled {
			return
		}
		e.rules = append(e.rules, compiled{legacy: r.Default && legacyMentionRules[r.RuleID],
			conds: conds, actions: compileActions(r.RuleID, r.Actions)})
	}
	for i := range rs.Override {
		add(&rs.Override[i], compileConditions(rs.Override[i].Conditions))
	}
	for i := range rs.Content {
		r := &rs.Content[i]
		c := condition{kind: condNever}
		if r.Pattern != nil {
			c = condition{kind: condMatch, path: compilePath("content.body"), glob: compileGlob(*r.Pattern, true)}
		}
		add(r, []condition{c})
	}
	for i := range rs.Room {
		add(&rs.Room[i], []condition{{kind: condEquals, path: compilePath("room_id"), str: rs.Room[i].RuleID}})
	}
	for i := range rs.Sender {
		add(&rs.Sender[i], []condition{{kind: condEquals, path: compilePath("sender"), str: rs.Sender[i].RuleID}})
	}
	for i := range rs.Underride {
		add(&rs.Underride[i], compileConditions(rs.Underride[i].Conditions))
	}
	return e
}

// wireCondition is a condition as stored.
type wireCondition struct {
	Kind    string          `json:"kind"`
	Key     *string         `json:"key"`
	Pattern *string         `json:"pattern"`
	Value   json.RawMessage `json:"value"`
	Is      *string         `json:"is"`
}

func compileConditions(raw json.RawMessage) []condition {
	if len(raw) == 0 {
		return nil // no conditions: the rule matches every event
	}
	var list []wireCondition
	if err := json.Unmarshal(raw, &list); err != nil {
		return []condition{{kind: condNever}}
	}
	out := make([]condition, 0, len(list))
	for _, w := range list {
		out = append(out, compileCondition(&w))
	}
	return out
}

func compileCondition(w *wireCondition) condition {
	switch w.Kind {
	case "event_match":
		if w.Key == nil || w.Pattern == nil {
			break
		}
		return condition{kind: condMatch, path: compilePath(*w.Key), glob: compileGlob(*w.Pattern, *w.Key == "content.body")}
	case "event_property_is", "event_property_contains":
		if w.Key == nil || len(w.Value) == 0 {
			break
		}
		v := gjson.ParseBytes(w.Value)
		switch v.Type {
		case gjson.String, gjson.Number, gjson.True, gjson.False, gjson.Null:
		default:
			return condition{kind: condNever} // objects and arrays are not allowed values
		}
		k := condIs
		if w.Kind == "event_property_contains" {
			k = condContains
		}
		return condition{kind: k, path: compilePath(*w.Key), value: v}
	case "contains_display_name":
		return condition{kind: condDisplayName}
	case "room_member_count":
		if w.Is == nil {
			break
		}
		if c, ok := parseCount(*w.Is); ok {
			return condition{kind: condMemberCount, count: c}
		}
	case "sender_notification_permission":
		if w.Key != nil {
			return condition{kind: condPermission, str: *w.Key}
		}
	}
	return condition{kind: condNever}
}

// compileActions reads a rule's actions. "dont_notify" and "coalesce" do
// nothing (the spec made them no-ops in v1.7): only "notify" notifies.
func compileActions(ruleID string, raw json.RawMessage) Actions {
	a := Actions{RuleID: ruleID, Tweaks: json.RawMessage("{}")}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return a
	}
	tweaks := map[string]json.RawMessage{}
	for _, item := range list {
		var name string
		if json.Unmarshal(item, &name) == nil {
			if name == "notify" {
				a.Notify = true
			}
			continue
		}
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(item, &t) != nil || t.SetTweak == "" {
			continue
		}
		switch t.SetTweak {
		case "highlight":
			var on bool
			if len(t.Value) == 0 {
				on = true
			} else if json.Unmarshal(t.Value, &on) != nil {
				continue // not a boolean: ignored
			}
			a.Highlight = on
			t.Value = json.RawMessage(boolJSON(on))
		case "sound":
			var s string
			if json.Unmarshal(t.Value, &s) != nil {
				continue
			}
			a.Sound = s
		default:
			if len(t.Value) == 0 {
				continue
			}
		}
		tweaks[t.SetTweak] = t.Value
	}
	if len(tweaks) > 0 {
		b, err := json.Marshal(tweaks) // keys sorted by encoding/json; values checked by Unmarshal
		if err == nil {
			a.Tweaks = b
		}
	}
	return a
}

func boolJSON(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

var (
	bodyPath     = compilePath("content.body")
	mentionsPath = compilePath(`content.m\.mentions`)
)

// noMatch is what an event that no rule matches gets: nothing.
var noMatch = Actions{Tweaks: json.RawMessage("{}")}

// Eval returns the actions of the first rule that matches ev, in the spec's
// order (override, content, room, sender, underride; the user's rules before
// the server defaults within each kind, .m.rule.master first). It allocates
// nothing.
func (e *Evaluator) Eval(ev *Event) Actions {
	mentions := -1 // whether content has m.mentions: looked up once, if needed
	for i := range e.rules {
		r := &e.rules[i]
		if r.legacy {
			if mentions < 0 {
				mentions = 0
				if ev.get(&mentionsPath).Exists() {
					mentions = 1
				}
			}
			if mentions == 1 {
				continue
			}
		}
		if matchAll(r.conds, ev) {
			return r.actions
		}
	}
	return noMatch
}

func matchAll(conds []condition, ev *Event) bool {
	for i := range conds {
		if !conds[i].match(ev) {
			return false
		}
	}
	return true
}

func (c *condition) match(ev *Event) bool {
	switch c.kind {
	case condMatch:
		v := ev.get(&c.path)
		return v.Type == gjson.String && c.glob.match(v.Str)
	case condEquals:
		v := ev.get(&c.path)
		return v.Type == gjson.String && v.Str == c.str
	case condIs:
		return sameValue(ev.get(&c.path), c.value)
	case condContains:
		v := ev.get(&c.path)
		if !v.IsArray() {
			return false
		}
		found := false
		v.ForEach(func(_, item gjson.Result) bool {
			found = sameValue(item, c.value)
			return !found
		})
		return found
	case condDisplayName:
		body := ev.get(&bodyPath)
		return ev.DisplayName != "" && body.Type == gjson.String && containsWord(body.Str, ev.DisplayName)
	case condMemberCount:
		return c.count.match(ev.MemberCount)
	case condPermission:
		return ev.Power != nil && ev.Power.SenderMayNotify(c.str)
	}
	return false
}

// sameValue reports whether a property equals a condition's value: same
// JSON type and value (strings exactly, numbers by value).
func sameValue(v, want gjson.Result) bool {
	if !v.Exists() || v.Type != want.Type {
		return false
	}
	switch v.Type {
	case gjson.String:
		return v.Str == want.Str
	case gjson.Number:
		return v.Num == want.Num
	}
	return true // true, false and null
}
