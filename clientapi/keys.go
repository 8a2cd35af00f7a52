package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// End-to-end encryption keys. Parley stores what clients upload and serves
// it back; it checks the shape of what it stores and who may store it, but
// never verifies a signature or looks inside a key: that is the clients'
// job, and they do it.

const (
	// keysBatch is how many users one store query covers, far below both
	// engines' bound on parameters per statement.
	keysBatch = 500
	// maxKeyClaims bounds the one-time keys one /keys/claim takes; each is
	// a write.
	maxKeyClaims = 1000
	// userSigningSigPrefix names the e2e_cross_signing rows in which a
	// user keeps their user-signing key's signatures of other users'
	// master keys: row (signer, prefix+target) holds
	// {"key": target's master public key, "signatures": {keyID: sig}}.
	// They live with the signer, not in the target's key, because only
	// the signer may see them (spec: /keys/query master_keys).
	userSigningSigPrefix = "user_signing_sig:"
)

// crossSigningTypes are the cross-signing key types, in upload order.
var crossSigningTypes = [...]string{"master", "self_signing", "user_signing"}

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
	ctx := r.Context()
	changed := false
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		var dk struct {
			UserID   string `json:"user_id"`
			DeviceID string `json:"device_id"`
		}
		if _, ok := jsonObject(req.DeviceKeys); !ok || json.Unmarshal(req.DeviceKeys, &dk) != nil {
			return apierr.BadJSON("device_keys must be an object")
		}
		if dk.UserID != s.UserID || dk.DeviceID != s.DeviceID {
			return apierr.InvalidParam("device_keys must be for the device making the request")
		}
		stored, err := a.store.DeviceKeys(ctx, []string{s.UserID})
		if err != nil {
			return err
		}
		// Keys equal but for signatures are kept as stored: the stored copy
		// may carry cross-signing signatures the client's copy lacks.
		if old, ok := stored[s.UserID][s.DeviceID]; !ok || !sameKey([]byte(old), req.DeviceKeys) {
			if err := a.store.PutDeviceKeys(ctx, s.UserID, s.DeviceID, compact(req.DeviceKeys)); err != nil {
				return err
			}
			changed = true
		}
	}
	if err := a.putOneTimeKeys(ctx, s, req.OneTimeKeys, false); err != nil {
		return err
	}
	if err := a.putOneTimeKeys(ctx, s, req.FallbackKeys, true); err != nil {
		return err
	}
	if changed {
		if err := a.rooms.DeviceListChanged(ctx, s.UserID); err != nil {
			return err
		}
	}
	counts, _, err := a.store.OneTimeKeyCounts(ctx, s.UserID, s.DeviceID)
	if err != nil {
		return err
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0 // some clients want it spelled out
	}
	return writeJSON(w, map[string]any{"one_time_key_counts": counts})
}

// putOneTimeKeys stores keys named "algorithm:key_id". The full name is the
// stored key ID, so a claim returns it as is.
func (a *API) putOneTimeKeys(ctx context.Context, s *session, keys map[string]json.RawMessage, fallback bool) error {
	seen := map[string]bool{}
	for name, key := range keys {
		alg, id, ok := strings.Cut(name, ":")
		if !ok || alg == "" || id == "" {
			return apierr.InvalidParam("Key names must be algorithm:key_id, not " + name)
		}
		if _, isObject := jsonObject(key); !isObject && !isJSONString(key) {
			return apierr.BadJSON("Key " + name + " must be an object or a string")
		}
		if fallback {
			if seen[alg] {
				return apierr.InvalidParam("At most one fallback key per algorithm")
			}
			seen[alg] = true
		}
		if err := a.store.PutOneTimeKey(ctx, s.UserID, s.DeviceID, name, alg, compact(key), fallback); err != nil {
			return err
		}
	}
	return nil
}

// keysQuery returns the device and cross-signing keys of local users.
// Remote users are left out: there is no federation to ask.
func (a *API) keysQuery(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return apierr.MissingParam("device_keys is required")
	}
	var users []string
	for u := range req.DeviceKeys {
		if pdu.ValidUserID(u) && pdu.Domain(u) == a.cfg.ServerName {
			users = append(users, u)
		}
	}
	ctx := r.Context()
	own, err := a.store.CrossSigningKeys(ctx, []string{s.UserID})
	if err != nil {
		return err
	}
	deviceKeys := map[string]map[string]json.RawMessage{}
	master, selfSigning, userSigning := map[string]json.RawMessage{}, map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for start := 0; start < len(users); start += keysBatch {
		part := users[start:min(start+keysBatch, len(users))]
		keys, err := a.store.DeviceKeys(ctx, part)
		if err != nil {
			return err
		}
		devices, err := a.store.DevicesOf(ctx, part)
		if err != nil {
			return err
		}
		names := map[[2]string]string{}
		for _, d := range devices {
			names[[2]string{d.UserID, d.DeviceID}] = d.DisplayName
		}
		cross, err := a.store.CrossSigningKeys(ctx, part)
		if err != nil {
			return err
		}
		for _, u := range part {
			out := map[string]json.RawMessage{}
			for device, k := range keys[u] {
				if wanted := req.DeviceKeys[u]; len(wanted) == 0 || slices.Contains(wanted, device) {
					out[device] = withDisplayName(k, names[[2]string{u, device}])
				}
			}
			deviceKeys[u] = out
			if k := cross[u]["master"]; k != "" {
				master[u] = withUserSigningSigs(k, s.UserID, own[s.UserID][userSigningSigPrefix+u])
			}
			if k := cross[u]["self_signing"]; k != "" {
				selfSigning[u] = json.RawMessage(k)
			}
			if k := cross[u]["user_signing"]; k != "" && u == s.UserID {
				userSigning[u] = json.RawMessage(k)
			}
		}
	}
	return writeJSON(w, map[string]any{
		"device_keys": deviceKeys, "failures": map[string]any{},
		"master_keys": master, "self_signing_keys": selfSigning, "user_signing_keys": userSigning,
	})
}

// keysClaim takes one one-time key (or the fallback key) per device asked.
// A device with none left is simply missing from the answer.
func (a *API) keysClaim(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return apierr.MissingParam("one_time_keys is required")
	}
	n := 0
	for _, devices := range req.OneTimeKeys {
		n += len(devices)
	}
	if n > maxKeyClaims {
		return apierr.InvalidParam("Too many keys claimed at once")
	}
	ctx := r.Context()
	out := map[string]map[string]map[string]json.RawMessage{}
	for user, devices := range req.OneTimeKeys {
		if pdu.Domain(user) != a.cfg.ServerName {
			continue
		}
		for device, alg := range devices {
			keyID, key, err := a.store.ClaimOneTimeKey(ctx, user, device, alg)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if out[user] == nil {
				out[user] = map[string]map[string]json.RawMessage{}
			}
			out[user][device] = map[string]json.RawMessage{keyID: json.RawMessage(key)}
		}
	}
	return writeJSON(w, map[string]any{"one_time_keys": out, "failures": map[string]any{}})
}

// keysChanges lists users whose devices changed between two sync tokens.
// "left" is always empty: clients also learn of departures from sync.
func (a *API) keysChanges(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	if q.Get("from") == "" {
		return apierr.MissingParam("from is required")
	}
	from, err := inbox.ParseToken(q.Get("from"))
	if err != nil {
		return apierr.InvalidParam("Invalid from token")
	}
	to := inbox.Token{Pos: a.n.Pos()}
	if v := q.Get("to"); v != "" {
		if to, err = inbox.ParseToken(v); err != nil {
			return apierr.InvalidParam("Invalid to token")
		}
	}
	changed, err := a.store.DeviceListChangesSince(r.Context(), s.UserID, from.Pos, to.Pos)
	if err != nil {
		return err
	}
	if changed == nil {
		changed = []string{}
	}
	return writeJSON(w, map[string]any{"changed": changed, "left": []string{}})
}
