package clientapi

// The push-rule HTTP handlers: parsing and replies only. The model, the
// edits and their checks live in package pushrules; its errors become
// Matrix errors in domainError (domainerrors.go).

import (
	"encoding/json"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/pushrules"
)

func (a *API) getPushRules(w http.ResponseWriter, r *http.Request, s *session) error {
	rs, err := a.pushRules.Ruleset(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"global": rs})
}

func (a *API) getPushRulesGlobal(w http.ResponseWriter, r *http.Request, s *session) error {
	rs, err := a.pushRules.Ruleset(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, rs)
}

func (a *API) getPushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	rule, err := a.pushRules.Rule(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId"))
	if err != nil {
		return err
	}
	return writeJSON(w, rule)
}

func (a *API) getPushRuleEnabled(w http.ResponseWriter, r *http.Request, s *session) error {
	rule, err := a.pushRules.Rule(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"enabled": rule.Enabled})
}

func (a *API) getPushRuleActions(w http.ResponseWriter, r *http.Request, s *session) error {
	rule, err := a.pushRules.Rule(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]json.RawMessage{"actions": rule.Actions})
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
	if err := a.pushRules.SetEnabled(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId"), *req.Enabled); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) putPushRuleActions(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Actions json.RawMessage `json:"actions"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.pushRules.SetActions(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId"), req.Actions); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// putPushRule adds or replaces a user rule, placed by before/after or, for
// a new rule, first among the user's rules of its kind.
func (a *API) putPushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	kind, ruleID := param(r, "kind"), param(r, "ruleId")
	// The path is checked before the body, so a bad rule ID is reported
	// as such whatever the body holds.
	if err := pushrules.CheckNewRuleID(kind, ruleID); err != nil {
		return err
	}
	var req struct {
		Actions    json.RawMessage `json:"actions"`
		Conditions json.RawMessage `json:"conditions"`
		Pattern    *string         `json:"pattern"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	q := r.URL.Query()
	err := a.pushRules.Put(r.Context(), s.UserID, kind, ruleID, pushrules.NewRule{Actions: req.Actions,
		Conditions: req.Conditions, Pattern: req.Pattern, Before: q.Get("before"), After: q.Get("after")})
	if err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) deletePushRule(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.pushRules.Delete(r.Context(), s.UserID, param(r, "kind"), param(r, "ruleId")); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
