// Package pushrules owns a user's push rules: the server defaults, the
// user's stored changes to them, the edits the client API offers, and what
// sync needs from them (muted rooms, the merged ruleset). The client API and,
// later, federation call it; neither holds push-rule logic of its own.
package pushrules

import (
	"encoding/json"
	"strings"

	"github.com/parley-im/parley/rooms/pdu"
)

// Push rules decide which events notify a user. Parley stores each user's
// changes to the server-default rules, and the rules they add, and serves
// the merged ruleset so clients can show and edit notification settings.
//
// The rules are modelled with plain structs rather than mautrix's pushrules
// types: conditions and actions are kept as the raw JSON the client sent,
// which round-trips exactly; mautrix's types drop falsy condition values
// (omitempty on "value"), reorder room and sender rules (they are kept in a
// map), and accept malformed actions silently.
//
// Two evaluations use them. Classify applies the server-default rules once
// per event at write time, so unread counts need no per-member rows; a
// user's own rules then act on counts only as muted rooms. Compile and
// Evaluator.Eval (eval.go) apply a user's whole ruleset, for push delivery,
// after the commit (package push's scanner), with the compiled ruleset
// cached with the user's rules; see eval.go for why not mautrix's
// evaluator.

// Rule is one rule as it goes on the wire (PushRule in the spec).
type Rule struct {
	RuleID     string          `json:"rule_id"`
	Default    bool            `json:"default"`
	Enabled    bool            `json:"enabled"`
	Actions    json.RawMessage `json:"actions"`              // a JSON array
	Conditions json.RawMessage `json:"conditions,omitempty"` // a JSON array; override and underride only
	Pattern    *string         `json:"pattern,omitempty"`    // content rules only
}

// Ruleset is the "global" ruleset, each kind in priority order.
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// doc is the document stored per user with store.PutPushRules. It
// holds only what differs from the server defaults, so a change to the
// defaults reaches every user without a migration:
//
//	{
//	  "user": {                          // rules the user added, per kind,
//	    "override": [Rule, ...],     // most important first
//	    "content": [...], "room": [...], "sender": [...], "underride": [...]
//	  },
//	  "defaults": {                      // changes to server-default rules,
//	    "override/.m.rule.master": {"enabled": true},    // keyed "kind/rule_id"
//	    "underride/.m.rule.message": {"actions": []}
//	  }
//	}
type document struct {
	User     map[string][]Rule     `json:"user,omitempty"`
	Defaults map[string]ruleChange `json:"defaults,omitempty"`
}

// ruleChange is a user's change to one server-default rule; nil fields keep
// the default.
type ruleChange struct {
	Enabled *bool           `json:"enabled,omitempty"`
	Actions json.RawMessage `json:"actions,omitempty"`
}

// maxUserPushRules bounds the rules one user may add, so the stored
// document (rewritten on every change) stays small.
const maxUserPushRules = 1000

// validKind reports whether kind is one of the five rule kinds.
func validKind(kind string) bool {
	switch kind {
	case "override", "content", "room", "sender", "underride":
		return true
	}
	return false
}

// defaults builds the server-default ruleset of the spec's
// "Predefined Rules" for userID, as of v1.12 (the newest version Parley
// advertises, which still has the deprecated body-matching mention rules).
func defaults(userID string) Ruleset {
	localpart, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	js := func(v any) json.RawMessage {
		b, _ := json.Marshal(v) // plain maps and strings: cannot fail
		return b
	}
	match := func(key, pattern string) any {
		return map[string]string{"kind": "event_match", "key": key, "pattern": pattern}
	}
	sound := func(name string) any { return map[string]string{"set_tweak": "sound", "value": name} }
	highlight := map[string]string{"set_tweak": "highlight"}
	roomPermission := map[string]string{"kind": "sender_notification_permission", "key": "room"}
	memberCount2 := map[string]string{"kind": "room_member_count", "is": "2"}
	rule := func(id string, conditions []any, actions ...any) Rule {
		if actions == nil {
			actions = []any{}
		}
		return Rule{RuleID: id, Default: true, Enabled: true, Conditions: js(conditions), Actions: js(actions)}
	}
	master := rule(".m.rule.master", []any{})
	master.Enabled = false
	return Ruleset{
		Override: []Rule{
			master,
			rule(".m.rule.suppress_notices", []any{match("content.msgtype", "m.notice")}),
			rule(".m.rule.invite_for_me", []any{match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userID)},
				"notify", sound("default")),
			rule(".m.rule.member_event", []any{match("type", "m.room.member")}),
			rule(".m.rule.is_user_mention", []any{map[string]string{"kind": "event_property_contains", "key": `content.m\.mentions.user_ids`, "value": userID}},
				"notify", sound("default"), highlight),
			rule(".m.rule.contains_display_name", []any{map[string]string{"kind": "contains_display_name"}},
				"notify", sound("default"), highlight),
			rule(".m.rule.is_room_mention", []any{map[string]any{"kind": "event_property_is", "key": `content.m\.mentions.room`, "value": true}, roomPermission},
				"notify", highlight),
			rule(".m.rule.roomnotif", []any{match("content.body", "@room"), roomPermission}, "notify", highlight),
			rule(".m.rule.tombstone", []any{match("type", "m.room.tombstone"), match("state_key", "")}, "notify", highlight),
			rule(".m.rule.reaction", []any{match("type", "m.reaction")}),
			rule(".m.rule.room.server_acl", []any{match("type", "m.room.server_acl"), match("state_key", "")}),
			rule(".m.rule.suppress_edits", []any{map[string]string{"kind": "event_property_is", "key": `content.m\.relates_to.rel_type`, "value": "m.replace"}}),
		},
		Content: []Rule{{
			RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true, Pattern: &localpart,
			Actions: js([]any{"notify", sound("default"), highlight}),
		}},
		Room:   []Rule{},
		Sender: []Rule{},
		Underride: []Rule{
			rule(".m.rule.call", []any{match("type", "m.call.invite")}, "notify", sound("ring")),
			rule(".m.rule.encrypted_room_one_to_one", []any{memberCount2, match("type", "m.room.encrypted")}, "notify", sound("default")),
			rule(".m.rule.room_one_to_one", []any{memberCount2, match("type", "m.room.message")}, "notify", sound("default")),
			rule(".m.rule.message", []any{match("type", "m.room.message")}, "notify"),
			rule(".m.rule.encrypted", []any{match("type", "m.room.encrypted")}, "notify"),
		},
	}
}

// merge applies doc to the defaults. The spec ranks server-default
// rules below the user's in each kind, except .m.rule.master, which always
// comes first.
func merge(userID string, doc *document) Ruleset {
	def := defaults(userID)
	apply := func(kind string, rules []Rule) {
		for i := range rules {
			c, ok := doc.Defaults[kind+"/"+rules[i].RuleID]
			if !ok {
				continue
			}
			if c.Enabled != nil {
				rules[i].Enabled = *c.Enabled
			}
			if c.Actions != nil {
				rules[i].Actions = c.Actions
			}
		}
	}
	apply("override", def.Override)
	apply("content", def.Content)
	apply("underride", def.Underride)
	user := func(kind string) []Rule { return append([]Rule{}, doc.User[kind]...) }
	return Ruleset{
		Override:  append(append(def.Override[:1:1], doc.User["override"]...), def.Override[1:]...),
		Content:   append(user("content"), def.Content...),
		Room:      user("room"),
		Sender:    user("sender"),
		Underride: append(user("underride"), def.Underride...),
	}
}

// rulesOf returns the rules of one kind.
func (rs *Ruleset) rulesOf(kind string) []Rule {
	switch kind {
	case "override":
		return rs.Override
	case "content":
		return rs.Content
	case "room":
		return rs.Room
	case "sender":
		return rs.Sender
	case "underride":
		return rs.Underride
	}
	return nil
}

// find returns the rule kind/ruleID of the merged ruleset, or nil.
func (rs *Ruleset) find(kind, ruleID string) *Rule {
	rules := rs.rulesOf(kind)
	for i := range rules {
		if rules[i].RuleID == ruleID {
			return &rules[i]
		}
	}
	return nil
}

// hasNotify reports whether a rule's actions include "notify".
func hasNotify(actions json.RawMessage) bool {
	var list []json.RawMessage
	if json.Unmarshal(actions, &list) != nil {
		return false
	}
	for _, a := range list {
		var s string
		if json.Unmarshal(a, &s) == nil && s == "notify" {
			return true
		}
	}
	return false
}

// mutedRoomsIn lists the rooms doc silences: enabled room rules that do not
// notify, and enabled override rules whose only condition matches one
// room_id (how Element mutes a room) that do not notify.
func mutedRoomsIn(doc *document) map[string]bool {
	muted := map[string]bool{}
	for _, r := range doc.User["room"] {
		if r.Enabled && !hasNotify(r.Actions) {
			muted[r.RuleID] = true
		}
	}
	for _, r := range doc.User["override"] {
		if !r.Enabled || hasNotify(r.Actions) {
			continue
		}
		var conds []struct{ Kind, Key, Pattern string }
		if json.Unmarshal(r.Conditions, &conds) == nil && len(conds) == 1 &&
			conds[0].Kind == "event_match" && conds[0].Key == "room_id" && pdu.ValidRoomID(conds[0].Pattern) {
			muted[conds[0].Pattern] = true
		}
	}
	return muted
}
