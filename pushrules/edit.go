package pushrules

// The edits of the push-rule API, as pure functions on a user's document:
// validation, placement with before/after, and the per-rule changes.

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/pdu"
)

// NewRule is the body of a PUT of a user rule, with the query's placement.
type NewRule struct {
	Actions    json.RawMessage // a JSON array; required
	Conditions json.RawMessage // a JSON array; override and underride only
	Pattern    *string         // content rules only; required there
	Before     string          // place before this user rule, if set
	After      string          // else after this one, if set
}

// CheckKind reports an unknown rule kind as ErrInvalidParam.
func CheckKind(kind string) error {
	if !validKind(kind) {
		return fail(ErrInvalidParam, "Unknown push rule kind "+kind)
	}
	return nil
}

// CheckNewRuleID checks the kind and ID of a rule a user adds.
func CheckNewRuleID(kind, ruleID string) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	switch {
	case ruleID == "" || len(ruleID) > 255:
		return fail(ErrInvalidParam, "A rule ID must be 1 to 255 bytes")
	case strings.HasPrefix(ruleID, "."):
		return fail(ErrInvalidParam, "Rule IDs starting with '.' are reserved for server-default rules")
	case strings.ContainsAny(ruleID, `/\`):
		return fail(ErrInvalidParam, "Rule IDs may not contain slashes")
	case kind == "room" && !pdu.ValidRoomID(ruleID):
		return fail(ErrInvalidParam, "The rule ID of a room rule must be a room ID")
	case kind == "sender" && !pdu.ValidUserID(ruleID):
		return fail(ErrInvalidParam, "The rule ID of a sender rule must be a user ID")
	}
	return nil
}

// CheckActions validates an actions array and returns it compacted. The
// historical dont_notify and coalesce are accepted, as Synapse does.
func CheckActions(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fail(ErrMissingParam, "actions is required")
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, fail(ErrBadJSON, "actions must be an array")
	}
	for _, item := range list {
		var name string
		var tweak struct {
			SetTweak *string `json:"set_tweak"`
		}
		switch {
		case json.Unmarshal(item, &name) == nil:
			if name != "notify" && name != "dont_notify" && name != "coalesce" {
				return nil, fail(ErrInvalidParam, "Unknown push action "+name)
			}
		case json.Unmarshal(item, &tweak) == nil && tweak.SetTweak != nil:
		default:
			return nil, fail(ErrBadJSON, "Each action must be a string or an object with set_tweak")
		}
	}
	if list == nil {
		list = []json.RawMessage{}
	}
	return json.Marshal(list)
}

// checkConditions validates a conditions array; absent means none.
func checkConditions(raw json.RawMessage) (json.RawMessage, error) {
	var list []struct {
		Kind *string `json:"kind"`
	}
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`[]`), nil
	}
	if json.Unmarshal(raw, &list) != nil {
		return nil, fail(ErrBadJSON, "conditions must be an array of objects")
	}
	for _, c := range list {
		if c.Kind == nil {
			return nil, fail(ErrBadJSON, "Each condition needs a kind")
		}
	}
	var compact []json.RawMessage
	_ = json.Unmarshal(raw, &compact)
	return json.Marshal(compact)
}

// buildRule validates a new user rule.
func buildRule(kind, ruleID string, req NewRule) (Rule, error) {
	if err := CheckNewRuleID(kind, ruleID); err != nil {
		return Rule{}, err
	}
	rule := Rule{RuleID: ruleID, Enabled: true}
	var err error
	if rule.Actions, err = CheckActions(req.Actions); err != nil {
		return Rule{}, err
	}
	switch kind {
	case "override", "underride":
		if rule.Conditions, err = checkConditions(req.Conditions); err != nil {
			return Rule{}, err
		}
	case "content":
		if req.Pattern == nil {
			return Rule{}, fail(ErrMissingParam, "pattern is required for content rules")
		}
		rule.Pattern = req.Pattern
	}
	return rule, nil
}

// placeRule puts rule into rules: before the rule named by before, else
// after the one named by after, else where it already was, else first. An
// existing rule keeps its enabled flag. rules is not modified.
func placeRule(rules []Rule, rule Rule, before, after string) ([]Rule, error) {
	at := -1
	out := make([]Rule, 0, len(rules)+1)
	for _, existing := range rules {
		if existing.RuleID == rule.RuleID {
			rule.Enabled = existing.Enabled
			at = len(out)
			continue
		}
		out = append(out, existing)
	}
	anchor, offset := before, 0
	if anchor == "" && after != "" {
		anchor, offset = after, 1
	}
	if anchor != "" {
		if strings.HasPrefix(anchor, ".") {
			return nil, fail(ErrInvalidParam, "A rule cannot be placed relative to a server-default rule")
		}
		at = -1
		for i := range out {
			if out[i].RuleID == anchor {
				at = i + offset
			}
		}
		if at < 0 {
			return nil, fail(ErrAnchorNotFound, "before/after rule not found: "+anchor)
		}
	}
	if at < 0 {
		at = 0
	}
	return append(out[:at], append([]Rule{rule}, out[at:]...)...), nil
}

// clone copies d deeply enough to edit: the maps and the rule slices. Rule
// JSON fields are replaced on edit, never written into, so they are shared.
func (d *document) clone() *document {
	c := &document{User: make(map[string][]Rule, len(d.User)), Defaults: make(map[string]ruleChange, len(d.Defaults))}
	for k, v := range d.User {
		c.User[k] = append([]Rule(nil), v...)
	}
	for k, v := range d.Defaults {
		c.Defaults[k] = v
	}
	return c
}

// lookup finds kind/ruleID in the merged ruleset of d.
func lookup(userID string, d *document, kind, ruleID string) (*Rule, error) {
	if err := CheckKind(kind); err != nil {
		return nil, err
	}
	rs := merge(userID, d)
	rule := rs.find(kind, ruleID)
	if rule == nil {
		return nil, fail(ErrNotFound, "The push rule was not found")
	}
	return rule, nil
}

// changeRule applies change to kind/ruleID of d (a copy the caller owns):
// in place for a user rule, as a recorded change for a server-default one.
func changeRule(userID string, d *document, kind, ruleID string, change ruleChange) error {
	rule, err := lookup(userID, d, kind, ruleID)
	if err != nil {
		return err
	}
	if rule.Default {
		key := kind + "/" + rule.RuleID
		c := d.Defaults[key]
		if change.Enabled != nil {
			c.Enabled = change.Enabled
		}
		if change.Actions != nil {
			c.Actions = change.Actions
		}
		d.Defaults[key] = c
		return nil
	}
	rules := d.User[kind]
	for i := range rules {
		if rules[i].RuleID == rule.RuleID {
			if change.Enabled != nil {
				rules[i].Enabled = *change.Enabled
			}
			if change.Actions != nil {
				rules[i].Actions = change.Actions
			}
		}
	}
	return nil
}

// putRule adds or replaces a user rule in d (a copy the caller owns).
func putRule(d *document, kind, ruleID string, req NewRule) error {
	rule, err := buildRule(kind, ruleID, req)
	if err != nil {
		return err
	}
	rules, err := placeRule(d.User[kind], rule, req.Before, req.After)
	if err != nil {
		return err
	}
	d.User[kind] = rules
	total := 0
	for _, rs := range d.User {
		total += len(rs)
	}
	if total > maxUserPushRules {
		return fail(ErrInvalidParam, fmt.Sprintf("A user may add at most %d push rules", maxUserPushRules))
	}
	return nil
}

// deleteRule removes a user rule from d (a copy the caller owns).
// Server-default rules cannot be removed, only disabled; the spec names no
// error for trying, so it is the 400 M_INVALID_PARAM used for the other
// misuses of default rule IDs.
func deleteRule(userID string, d *document, kind, ruleID string) error {
	rule, err := lookup(userID, d, kind, ruleID)
	if err != nil {
		return err
	}
	if rule.Default {
		return fail(ErrInvalidParam, "Server-default push rules cannot be deleted")
	}
	rules := d.User[kind]
	for i := range rules {
		if rules[i].RuleID == rule.RuleID {
			d.User[kind] = append(rules[:i:i], rules[i+1:]...)
			break
		}
	}
	if len(d.User[kind]) == 0 {
		delete(d.User, kind)
	}
	return nil
}
