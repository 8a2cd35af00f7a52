package clientapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/pdu"
)

// Push rules decide which events notify a user. Parley stores each user's
// changes to the server-default rules, and the rules they add, and serves
// the merged ruleset so clients can show and edit notification settings.
//
// The rules are modelled with plain structs rather than mautrix's pushrules
// types: Parley never evaluates conditions, so it keeps them (and actions)
// as the raw JSON the client sent, which round-trips exactly; mautrix's
// types drop falsy condition values (omitempty on "value"), reorder room
// and sender rules (they are kept in a map), and accept malformed actions
// silently.

// pushRule is one rule as it goes on the wire (PushRule in the spec).
type pushRule struct {
	RuleID     string          `json:"rule_id"`
	Default    bool            `json:"default"`
	Enabled    bool            `json:"enabled"`
	Actions    json.RawMessage `json:"actions"`              // a JSON array
	Conditions json.RawMessage `json:"conditions,omitempty"` // a JSON array; override and underride only
	Pattern    *string         `json:"pattern,omitempty"`    // content rules only
}

// pushRuleset is the "global" ruleset, each kind in priority order.
type pushRuleset struct {
	Override  []pushRule `json:"override"`
	Content   []pushRule `json:"content"`
	Room      []pushRule `json:"room"`
	Sender    []pushRule `json:"sender"`
	Underride []pushRule `json:"underride"`
}

// pushRulesDoc is the document stored per user with store.PutPushRules. It
// holds only what differs from the server defaults, so a change to the
// defaults reaches every user without a migration:
//
//	{
//	  "user": {                          // rules the user added, per kind,
//	    "override": [pushRule, ...],     // most important first
//	    "content": [...], "room": [...], "sender": [...], "underride": [...]
//	  },
//	  "defaults": {                      // changes to server-default rules,
//	    "override/.m.rule.master": {"enabled": true},    // keyed "kind/rule_id"
//	    "underride/.m.rule.message": {"actions": []}
//	  }
//	}
type pushRulesDoc struct {
	User     map[string][]pushRule `json:"user,omitempty"`
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

// validPushKind reports whether kind is one of the five rule kinds.
func validPushKind(kind string) bool {
	switch kind {
	case "override", "content", "room", "sender", "underride":
		return true
	}
	return false
}

// defaultPushRules builds the server-default ruleset of the spec's
// "Predefined Rules" for userID, as of v1.12 (the newest version Parley
// advertises, which still has the deprecated body-matching mention rules).
func defaultPushRules(userID string) pushRuleset {
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
	rule := func(id string, conditions []any, actions ...any) pushRule {
		if actions == nil {
			actions = []any{}
		}
		return pushRule{RuleID: id, Default: true, Enabled: true, Conditions: js(conditions), Actions: js(actions)}
	}
	master := rule(".m.rule.master", []any{})
	master.Enabled = false
	return pushRuleset{
		Override: []pushRule{
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
		Content: []pushRule{{
			RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true, Pattern: &localpart,
			Actions: js([]any{"notify", sound("default"), highlight}),
		}},
		Room:   []pushRule{},
		Sender: []pushRule{},
		Underride: []pushRule{
			rule(".m.rule.call", []any{match("type", "m.call.invite")}, "notify", sound("ring")),
			rule(".m.rule.encrypted_room_one_to_one", []any{memberCount2, match("type", "m.room.encrypted")}, "notify", sound("default")),
			rule(".m.rule.room_one_to_one", []any{memberCount2, match("type", "m.room.message")}, "notify", sound("default")),
			rule(".m.rule.message", []any{match("type", "m.room.message")}, "notify"),
			rule(".m.rule.encrypted", []any{match("type", "m.room.encrypted")}, "notify"),
		},
	}
}

// mergePushRules applies doc to the defaults. The spec ranks server-default
// rules below the user's in each kind, except .m.rule.master, which always
// comes first.
func mergePushRules(userID string, doc *pushRulesDoc) pushRuleset {
	def := defaultPushRules(userID)
	apply := func(kind string, rules []pushRule) {
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
	user := func(kind string) []pushRule { return append([]pushRule{}, doc.User[kind]...) }
	return pushRuleset{
		Override:  append(append(def.Override[:1:1], doc.User["override"]...), def.Override[1:]...),
		Content:   append(user("content"), def.Content...),
		Room:      user("room"),
		Sender:    user("sender"),
		Underride: append(user("underride"), def.Underride...),
	}
}

// rulesOf returns the rules of one kind.
func (rs *pushRuleset) rulesOf(kind string) []pushRule {
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
func (rs *pushRuleset) find(kind, ruleID string) *pushRule {
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
func mutedRoomsIn(doc *pushRulesDoc) map[string]bool {
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

// loadPushRules reads a user's stored document; none stored means no changes.
func (a *API) loadPushRules(ctx context.Context, userID string) (*pushRulesDoc, error) {
	body, err := a.store.GetPushRules(ctx, userID)
	if err != nil {
		return nil, err
	}
	doc := &pushRulesDoc{}
	if body != "" {
		if err := json.Unmarshal([]byte(body), doc); err != nil {
			return nil, fmt.Errorf("push rules of %s: %w", userID, err)
		}
	}
	if doc.User == nil {
		doc.User = map[string][]pushRule{}
	}
	if doc.Defaults == nil {
		doc.Defaults = map[string]ruleChange{}
	}
	return doc, nil
}

// effectivePushRules is the user's merged ruleset.
func (a *API) effectivePushRules(ctx context.Context, userID string) (pushRuleset, error) {
	doc, err := a.loadPushRules(ctx, userID)
	if err != nil {
		return pushRuleset{}, err
	}
	return mergePushRules(userID, doc), nil
}

// savePushRules stores doc and publishes the merged ruleset as the
// m.push_rules account data, which is how the user's other clients hear of
// the change through /sync. The document is the truth: a failure to
// publish is logged, not returned, since the change itself was saved.
func (a *API) savePushRules(ctx context.Context, userID string, doc *pushRulesDoc) error {
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := a.store.PutPushRules(ctx, userID, string(body)); err != nil {
		return err
	}
	content, err := json.Marshal(map[string]any{"global": mergePushRules(userID, doc)})
	if err == nil {
		err = a.rooms.PutAccountData(context.WithoutCancel(ctx), userID, "", "m.push_rules", content)
	}
	if err != nil {
		a.log.Warn("publish push rules", "user", userID, "err", err)
	}
	return nil
}
