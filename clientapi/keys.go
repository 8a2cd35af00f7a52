package clientapi

// The end-to-end key handlers: parsing, user-interactive auth and replies.
// The rules live in package e2ekeys.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/inbox"
)

// keysUpload stores the device's identity keys and new one-time and
// fallback keys, and reports how many one-time keys the server holds.
func (a *API) keysUpload(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	counts, err := a.keys.Upload(r.Context(), s.UserID, s.DeviceID, e2ekeys.Upload{
		DeviceKeys: req.DeviceKeys, OneTimeKeys: req.OneTimeKeys, FallbackKeys: req.FallbackKeys})
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"one_time_key_counts": counts})
}

// keysQuery returns the device and cross-signing keys of local users, and
// of other servers' users as their servers answer within the timeout.
func (a *API) keysQuery(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
		Timeout    *int64              `json:"timeout"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return apierr.MissingParam("device_keys is required")
	}
	timeout, err := keysTimeout(req.Timeout)
	if err != nil {
		return err
	}
	k, failures, err := a.keys.QueryAll(r.Context(), s.UserID, req.DeviceKeys, timeout)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{
		"device_keys": k.DeviceKeys, "failures": failures,
		"master_keys": k.Master, "self_signing_keys": k.SelfSigning, "user_signing_keys": k.UserSigning,
	})
}

// keysClaim takes one one-time key (or the fallback key) per device asked.
func (a *API) keysClaim(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
		Timeout     *int64                       `json:"timeout"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return apierr.MissingParam("one_time_keys is required")
	}
	timeout, err := keysTimeout(req.Timeout)
	if err != nil {
		return err
	}
	out, failures, err := a.keys.ClaimAll(r.Context(), req.OneTimeKeys, timeout)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"one_time_keys": out, "failures": failures})
}

// keysTimeout reads the optional timeout (milliseconds) of keys/query and
// keys/claim; 0 when absent, so the domain's default applies.
func keysTimeout(ms *int64) (time.Duration, error) {
	if ms == nil {
		return 0, nil
	}
	if *ms < 0 {
		return 0, apierr.InvalidParam("timeout must not be negative")
	}
	return time.Duration(min(*ms, int64(time.Hour/time.Millisecond))) * time.Millisecond, nil
}

// keysChanges lists users whose devices changed between two sync tokens,
// and those who no longer share a room with the caller (inbox decides, as
// for sync's device_lists.left).
func (a *API) keysChanges(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	if q.Get("from") == "" {
		return apierr.MissingParam("from is required")
	}
	// A from token of another epoch reads from the start: every change.
	from, _, err := a.syncToken(q.Get("from"))
	if err != nil {
		return errBadToken("from")
	}
	to := inbox.Token{Pos: a.n.Pos()}
	if v := q.Get("to"); v != "" {
		t, current, err := a.syncToken(v)
		if err != nil {
			return errBadToken("to")
		}
		if current {
			to = t
		}
	}
	changed, err := a.keys.Changes(r.Context(), s.UserID, from.Pos, to.Pos)
	if err != nil {
		return err
	}
	left, err := a.syncer.DeviceListsLeft(r.Context(), s.UserID, from.Pos, to.Pos)
	if err != nil {
		return err
	}
	changed = slices.DeleteFunc(changed, func(u string) bool { return slices.Contains(left, u) })
	if changed == nil {
		changed = []string{}
	}
	if left == nil {
		left = []string{}
	}
	return writeJSON(w, map[string]any{"changed": changed, "left": left})
}

// deviceSigningUpload stores cross-signing keys; e2ekeys decides when
// replacing them needs the password.
func (a *API) deviceSigningUpload(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		MasterKey      json.RawMessage `json:"master_key"`
		SelfSigningKey json.RawMessage `json:"self_signing_key"`
		UserSigningKey json.RawMessage `json:"user_signing_key"`
		Auth           *uiaAuth        `json:"auth"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	err := a.keys.UploadSigningKeys(r.Context(), s.UserID,
		e2ekeys.SigningKeys{Master: req.MasterKey, SelfSigning: req.SelfSigningKey, UserSigning: req.UserSigningKey},
		func(ctx context.Context) error { return a.requirePassword(ctx, s, req.Auth) })
	if err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// signaturesUpload adds the caller's signatures to keys.
func (a *API) signaturesUpload(w http.ResponseWriter, r *http.Request, s *session) error {
	var req map[string]map[string]json.RawMessage
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	failures, err := a.keys.UploadSignatures(r.Context(), s.UserID, req)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"failures": failures})
}
