package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/parley-im/parley/clientapi/apierr"
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

// deviceSigningUpload stores cross-signing keys. As the spec (v1.11+) has
// it, user-interactive auth is needed only to replace keys: a first upload,
// or a retry of the same keys, goes through without it.
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
	ctx := r.Context()
	existing, err := a.store.CrossSigningKeys(ctx, []string{s.UserID})
	if err != nil {
		return err
	}
	mine := existing[s.UserID]
	changed := map[string]string{}
	for i, raw := range []json.RawMessage{req.MasterKey, req.SelfSigningKey, req.UserSigningKey} {
		typ := crossSigningTypes[i]
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		if err := checkCrossSigningKey(raw, s.UserID, typ); err != nil {
			return err
		}
		// As for device keys, a key that differs only in signatures is the
		// same key, and the stored copy may have more of them.
		if !sameKey([]byte(mine[typ]), raw) {
			changed[typ] = compact(raw)
		}
	}
	if mine["master"] == "" && changed["master"] == "" && len(changed) > 0 {
		return apierr.MissingParam("No master key is available")
	}
	if len(changed) == 0 {
		return writeJSON(w, emptyObject)
	}
	if mine["master"] != "" {
		if err := a.requirePassword(ctx, s, req.Auth); err != nil {
			return err
		}
	}
	for _, typ := range crossSigningTypes {
		if k, ok := changed[typ]; ok {
			if err := a.store.PutCrossSigningKey(ctx, s.UserID, typ, k); err != nil {
				return err
			}
		}
	}
	if err := a.rooms.DeviceListChanged(ctx, s.UserID); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// checkCrossSigningKey checks a cross-signing key's shape: the caller's,
// with the usage it is uploaded for, and with keys.
func checkCrossSigningKey(raw json.RawMessage, userID, usage string) error {
	var k struct {
		UserID string            `json:"user_id"`
		Usage  []string          `json:"usage"`
		Keys   map[string]string `json:"keys"`
	}
	if _, ok := jsonObject(raw); !ok || json.Unmarshal(raw, &k) != nil {
		return apierr.BadJSON("A cross-signing key must be an object with user_id, usage and keys")
	}
	if k.UserID != userID {
		return apierr.InvalidParam("Cross-signing keys must be your own")
	}
	if !slices.Contains(k.Usage, usage) || len(k.Keys) == 0 {
		return apierr.InvalidParam("The " + usage + " key needs usage " + usage + " and at least one key")
	}
	return nil
}

// signaturesUpload adds the caller's signatures to keys: to their own
// devices' keys and cross-signing keys (stored in the key itself, which
// everyone may see), and to other users' master keys (stored with the
// caller, who alone sees them). Each signed object must be the stored key
// plus signatures; Parley does not check the signatures themselves.
func (a *API) signaturesUpload(w http.ResponseWriter, r *http.Request, s *session) error {
	var req map[string]map[string]json.RawMessage
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	users := []string{s.UserID}
	for u := range req {
		if u != s.UserID && pdu.ValidUserID(u) && pdu.Domain(u) == a.cfg.ServerName && len(users) < keysBatch {
			users = append(users, u)
		}
	}
	devKeys, err := a.store.DeviceKeys(ctx, []string{s.UserID})
	if err != nil {
		return err
	}
	cross, err := a.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return err
	}
	failures := map[string]map[string]any{}
	fail := func(user, keyID, code, msg string) {
		if failures[user] == nil {
			failures[user] = map[string]any{}
		}
		failures[user][keyID] = map[string]string{"errcode": code, "error": msg}
	}
	stored := false
	for user, objects := range req {
		for keyID, obj := range objects {
			var signed struct {
				Signatures map[string]map[string]string `json:"signatures"`
			}
			if _, ok := jsonObject(obj); !ok || json.Unmarshal(obj, &signed) != nil || len(signed.Signatures[s.UserID]) == 0 {
				fail(user, keyID, "M_INVALID_SIGNATURE", "No signatures by "+s.UserID)
				continue
			}
			sigs := signed.Signatures[s.UserID]
			target, typ := signedKey(user, keyID, s.UserID, devKeys, cross)
			if target == "" {
				fail(user, keyID, "M_NOT_FOUND", "Unknown key")
				continue
			}
			if !sameKey([]byte(target), obj) {
				fail(user, keyID, "M_INVALID_SIGNATURE", "The signed object does not match the stored key")
				continue
			}
			// Each write also updates the loaded copy, so two objects of one
			// request that sign the same key both count.
			var err error
			switch {
			case typ == "device":
				k := mergeSignatures(target, s.UserID, sigs)
				devKeys[user][keyID] = k
				err = a.store.PutDeviceKeys(ctx, user, keyID, k)
			case user == s.UserID:
				k := mergeSignatures(target, s.UserID, sigs)
				cross[user][typ] = k
				err = a.store.PutCrossSigningKey(ctx, user, typ, k)
			default:
				if cross[s.UserID] == nil {
					cross[s.UserID] = map[string]string{}
				}
				row := userSigningRow(cross[s.UserID][userSigningSigPrefix+user], keyID, sigs)
				cross[s.UserID][userSigningSigPrefix+user] = row
				err = a.store.PutCrossSigningKey(ctx, s.UserID, userSigningSigPrefix+user, row)
			}
			if err != nil {
				return err
			}
			stored = true
		}
	}
	if stored {
		if err := a.rooms.DeviceListChanged(ctx, s.UserID); err != nil {
			return err
		}
	}
	return writeJSON(w, map[string]any{"failures": failures})
}

// signedKey finds the stored key a signature upload names: one of the
// caller's devices, one of the caller's cross-signing keys, or another
// user's master key (by its public key). typ is "device" or the
// cross-signing key type; target is "" when there is no such key.
func signedKey(user, keyID, caller string, devKeys, cross map[string]map[string]string) (target, typ string) {
	if user == caller {
		if k, ok := devKeys[caller][keyID]; ok {
			return k, "device"
		}
		for _, t := range crossSigningTypes {
			if k := cross[caller][t]; k != "" && hasPublicKey(k, keyID) {
				return k, t
			}
		}
		return "", ""
	}
	if k := cross[user]["master"]; k != "" && hasPublicKey(k, keyID) {
		return k, "master"
	}
	return "", ""
}

// hasPublicKey reports whether a cross-signing key's keys include pub.
func hasPublicKey(keyJSON, pub string) bool {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal([]byte(keyJSON), &k) != nil {
		return false
	}
	for name, value := range k.Keys {
		if value == pub || strings.TrimPrefix(name, "ed25519:") == pub {
			return true
		}
	}
	return false
}

// mergeSignatures adds signer's sigs to a stored key's signatures.
func mergeSignatures(keyJSON, signer string, sigs map[string]string) string {
	var k map[string]json.RawMessage
	var all map[string]map[string]string
	_ = json.Unmarshal([]byte(keyJSON), &k)
	_ = json.Unmarshal(k["signatures"], &all)
	if all == nil {
		all = map[string]map[string]string{}
	}
	if all[signer] == nil {
		all[signer] = map[string]string{}
	}
	for id, sig := range sigs {
		all[signer][id] = sig
	}
	k["signatures"], _ = json.Marshal(all)
	out, _ := json.Marshal(k)
	return string(out)
}

// userSigningRow merges sigs of the master key pub into a stored
// user-signing signature row; signatures of an older master key go.
func userSigningRow(row, pub string, sigs map[string]string) string {
	var r struct {
		Key        string            `json:"key"`
		Signatures map[string]string `json:"signatures"`
	}
	if json.Unmarshal([]byte(row), &r) != nil || r.Key != pub || r.Signatures == nil {
		r.Key, r.Signatures = pub, map[string]string{}
	}
	for id, sig := range sigs {
		r.Signatures[id] = sig
	}
	out, _ := json.Marshal(r)
	return string(out)
}

// withUserSigningSigs adds to a master key the signatures viewer made of
// it, from viewer's row, if that row is about this very key.
func withUserSigningSigs(keyJSON, viewer, row string) json.RawMessage {
	var r struct {
		Key        string            `json:"key"`
		Signatures map[string]string `json:"signatures"`
	}
	if row == "" || json.Unmarshal([]byte(row), &r) != nil || !hasPublicKey(keyJSON, r.Key) {
		return json.RawMessage(keyJSON)
	}
	return json.RawMessage(mergeSignatures(keyJSON, viewer, r.Signatures))
}

// withDisplayName adds unsigned.device_display_name to device keys.
func withDisplayName(keyJSON, name string) json.RawMessage {
	var k map[string]json.RawMessage
	if name == "" || json.Unmarshal([]byte(keyJSON), &k) != nil {
		return json.RawMessage(keyJSON)
	}
	var unsigned map[string]any
	_ = json.Unmarshal(k["unsigned"], &unsigned)
	if unsigned == nil {
		unsigned = map[string]any{}
	}
	unsigned["device_display_name"] = name
	k["unsigned"], _ = json.Marshal(unsigned)
	out, _ := json.Marshal(k)
	return out
}

// sameKey reports whether two keys' JSON texts are equal as values, not
// counting their signatures and unsigned members.
func sameKey(a, b []byte) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, m := range []map[string]any{x, y} {
		delete(m, "signatures")
		delete(m, "unsigned")
	}
	return reflect.DeepEqual(x, y)
}

// jsonObject parses raw as a JSON object.
func jsonObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}

// compact returns raw without insignificant whitespace, for storage.
func compact(raw json.RawMessage) string {
	out, err := json.Marshal(raw) // a RawMessage marshals compacted
	if err != nil {
		return string(raw)
	}
	return string(out)
}
