package clientapi

// The push-rule HTTP handlers; the ruleset model is in pushrules.go.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
)

func (a *API) getPushRules(w http.ResponseWriter, r *http.Request, s *session) error {
	rs, err := a.effectivePushRules(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"global": rs})
}

func (a *API) getPushRulesGlobal(w http.ResponseWriter, r *http.Request, s *session) error {
	rs, err := a.effectivePushRules(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, rs)
}

// ruleTarget reads the path's kind and rule ID.
func ruleTarget(r *http.Request) (kind, ruleID string, err error) {
	kind, ruleID = param(r, "kind"), param(r, "ruleId")
	if !validPushKind(kind) {
		return "", "", apierr.InvalidParam("Unknown push rule kind " + kind)
	}
	return kind, ruleID, nil
}

// lookupRule loads the user's document and finds the path's rule in the
// merged ruleset.
func (a *API) lookupRule(r *http.Request, s *session) (doc *pushRulesDoc, kind string, rule *pushRule, err error) {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return nil, "", nil, err
	}
	if doc, err = a.loadPushRules(r.Context(), s.UserID); err != nil {
		return nil, "", nil, err
	}
	rs := mergePushRules(s.UserID, doc)
	if rule = rs.find(kind, ruleID); rule == nil {
		return nil, "", nil, apierr.NotFound("The push rule was not found")
	}
	return doc, kind, rule, nil
}

func (a *API) getPushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	_, _, rule, err := a.lookupRule(r, s)
	if err != nil {
		return err
	}
	return writeJSON(w, rule)
}

func (a *API) getPushRuleEnabled(w http.ResponseWriter, r *http.Request, s *session) error {
	_, _, rule, err := a.lookupRule(r, s)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"enabled": rule.Enabled})
}

func (a *API) getPushRuleActions(w http.ResponseWriter, r *http.Request, s *session) error {
	_, _, rule, err := a.lookupRule(r, s)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]json.RawMessage{"actions": rule.Actions})
}

// changeRule applies change to the path's rule: in place for a user rule,
// as a recorded change for a server-default one.
func (a *API) changeRule(w http.ResponseWriter, r *http.Request, s *session, change func(c *ruleChange)) error {
	doc, kind, rule, err := a.lookupRule(r, s)
	if err != nil {
		return err
	}
	if rule.Default {
		key := kind + "/" + rule.RuleID
		c := doc.Defaults[key]
		change(&c)
		doc.Defaults[key] = c
	} else {
		rules := doc.User[kind]
		for i := range rules {
			if rules[i].RuleID == rule.RuleID {
				var c ruleChange
				change(&c)
				if c.Enabled != nil {
					rules[i].Enabled = *c.Enabled
				}
				if c.Actions != nil {
					rules[i].Actions = c.Actions
				}
			}
		}
	}
	if err := a.savePushRules(r.Context(), s.UserID, doc); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) putPushRuleEnabled(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return apierr.MissingParam("enabled is required")
	}
	return a.changeRule(w, r, s, func(c *ruleChange) { c.Enabled = req.Enabled })
}

func (a *API) putPushRuleActions(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Actions json.RawMessage `json:"actions"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	actions, err := checkActions(req.Actions)
	if err != nil {
		return err
	}
	return a.changeRule(w, r, s, func(c *ruleChange) { c.Actions = actions })
}

// checkActions validates an actions array and returns it compacted. The
// historical dont_notify and coalesce are accepted, as Synapse does.
func checkActions(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, apierr.MissingParam("actions is required")
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, apierr.BadJSON("actions must be an array")
	}
	for _, item := range list {
		var name string
		var tweak struct {
			SetTweak *string `json:"set_tweak"`
		}
		switch {
		case json.Unmarshal(item, &name) == nil:
			if name != "notify" && name != "dont_notify" && name != "coalesce" {
				return nil, apierr.InvalidParam("Unknown push action " + name)
			}
		case json.Unmarshal(item, &tweak) == nil && tweak.SetTweak != nil:
		default:
			return nil, apierr.BadJSON("Each action must be a string or an object with set_tweak")
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
		return nil, apierr.BadJSON("conditions must be an array of objects")
	}
	for _, c := range list {
		if c.Kind == nil {
			return nil, apierr.BadJSON("Each condition needs a kind")
		}
	}
	var compact []json.RawMessage
	_ = json.Unmarshal(raw, &compact)
	return json.Marshal(compact)
}

// putPushRule adds or replaces a user rule, placed by before/after or, for
// a new rule, first among the user's rules of its kind.
func (a *API) putPushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	kind, ruleID, err := ruleTarget(r)
	if err != nil {
		return err
	}
	switch {
	case ruleID == "" || len(ruleID) > 255:
		return apierr.InvalidParam("A rule ID must be 1 to 255 bytes")
	case strings.HasPrefix(ruleID, "."):
		return apierr.InvalidParam("Rule IDs starting with '.' are reserved for server-default rules")
	case strings.ContainsAny(ruleID, `/\`):
		return apierr.InvalidParam("Rule IDs may not contain slashes")
	case kind == "room" && !pdu.ValidRoomID(ruleID):
		return apierr.InvalidParam("The rule ID of a room rule must be a room ID")
	case kind == "sender" && !pdu.ValidUserID(ruleID):
		return apierr.InvalidParam("The rule ID of a sender rule must be a user ID")
	}
	var req struct {
		Actions    json.RawMessage `json:"actions"`
		Conditions json.RawMessage `json:"conditions"`
		Pattern    *string         `json:"pattern"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	rule := pushRule{RuleID: ruleID, Enabled: true}
	if rule.Actions, err = checkActions(req.Actions); err != nil {
		return err
	}
	switch kind {
	case "override", "underride":
		if rule.Conditions, err = checkConditions(req.Conditions); err != nil {
			return err
		}
	case "content":
		if req.Pattern == nil {
			return apierr.MissingParam("pattern is required for content rules")
		}
		rule.Pattern = req.Pattern
	}
	doc, err := a.loadPushRules(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	rules, err := placeRule(doc.User[kind], rule, r.URL.Query().Get("before"), r.URL.Query().Get("after"))
	if err != nil {
		return err
	}
	doc.User[kind] = rules
	total := 0
	for _, rs := range doc.User {
		total += len(rs)
	}
	if total > maxUserPushRules {
		return apierr.InvalidParam(fmt.Sprintf("A user may add at most %d push rules", maxUserPushRules))
	}
	if err := a.savePushRules(r.Context(), s.UserID, doc); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// placeRule puts rule into rules: before the rule named by before, else
// after the one named by after, else where it already was, else first. An
// existing rule keeps its enabled flag.
func placeRule(rules []pushRule, rule pushRule, before, after string) ([]pushRule, error) {
	at := -1
	out := make([]pushRule, 0, len(rules)+1)
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
			return nil, apierr.InvalidParam("A rule cannot be placed relative to a server-default rule")
		}
		at = -1
		for i := range out {
			if out[i].RuleID == anchor {
				at = i + offset
			}
		}
		if at < 0 {
			return nil, apierr.New(http.StatusBadRequest, "M_UNKNOWN", "before/after rule not found: "+anchor)
		}
	}
	if at < 0 {
		at = 0
	}
	return append(out[:at], append([]pushRule{rule}, out[at:]...)...), nil
}

// deletePushRule removes a user rule. Server-default rules cannot be
// removed, only disabled; the spec names no error for trying, so it is the
// 400 M_INVALID_PARAM used for the other misuses of default rule IDs.
func (a *API) deletePushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	doc, kind, rule, err := a.lookupRule(r, s)
	if err != nil {
		return err
	}
	if rule.Default {
		return apierr.InvalidParam("Server-default push rules cannot be deleted")
	}
	rules := doc.User[kind]
	for i := range rules {
		if rules[i].RuleID == rule.RuleID {
			doc.User[kind] = append(rules[:i:i], rules[i+1:]...)
			break
		}
	}
	if len(doc.User[kind]) == 0 {
		delete(doc.User, kind)
	}
	if err := a.savePushRules(r.Context(), s.UserID, doc); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
