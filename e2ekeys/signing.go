package e2ekeys

// Cross-signing: uploading signing keys and signatures. Device and
// one-time keys are in keys.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// SigningKeys are the cross-signing keys of one upload; nil or JSON null
// for a key not uploaded.
type SigningKeys struct {
	Master, SelfSigning, UserSigning json.RawMessage
}

// UploadSigningKeys stores userID's cross-signing keys. As the spec
// (v1.11+) has it, user-interactive auth is needed only to replace keys: a
// first upload, or a retry of the same keys, goes through without it.
// authorize is called exactly when it is needed, before anything is
// written; its error is returned as is.
func (s *Service) UploadSigningKeys(ctx context.Context, userID string, up SigningKeys, authorize func(context.Context) error) error {
	existing, err := s.store.CrossSigningKeys(ctx, []string{userID})
	if err != nil {
		return fmt.Errorf("load cross-signing keys of %s: %w", userID, err)
	}
	mine := existing[userID]
	changed := map[string]string{}
	for i, raw := range []json.RawMessage{up.Master, up.SelfSigning, up.UserSigning} {
		typ := crossSigningTypes[i]
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		if err := checkCrossSigningKey(raw, userID, typ); err != nil {
			return err
		}
		// As for device keys, a key that differs only in signatures is the
		// same key, and the stored copy may have more of them.
		if !sameKey([]byte(mine[typ]), raw) {
			changed[typ] = compact(raw)
		}
	}
	if mine["master"] == "" && changed["master"] == "" && len(changed) > 0 {
		return fail(ErrMissingParam, "No master key is available")
	}
	if len(changed) == 0 {
		return nil
	}
	if mine["master"] != "" {
		if err := authorize(ctx); err != nil {
			return err
		}
	}
	for _, typ := range crossSigningTypes {
		if k, ok := changed[typ]; ok {
			if err := s.store.PutCrossSigningKey(ctx, userID, typ, k); err != nil {
				return fmt.Errorf("store %s key of %s: %w", typ, userID, err)
			}
		}
	}
	return s.changed(ctx, userID)
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
		return fail(ErrBadJSON, "A cross-signing key must be an object with user_id, usage and keys")
	}
	if k.UserID != userID {
		return fail(ErrInvalidParam, "Cross-signing keys must be your own")
	}
	if !slices.Contains(k.Usage, usage) || len(k.Keys) == 0 {
		return fail(ErrInvalidParam, "The "+usage+" key needs usage "+usage+" and at least one key")
	}
	return nil
}

// Failure is why one signed object of a signature upload was refused,
// as the spec's failures map has it.
type Failure struct {
	Code    string `json:"errcode"`
	Message string `json:"error"`
}

// UploadSignatures adds signer's signatures to keys (signed maps user ->
// key ID -> signed object): to their own devices' keys and cross-signing
// keys (stored in the key itself, which everyone may see), and to other
// users' master keys (stored with the signer, who alone sees them). Each
// signed object must be the stored key plus signatures; Parley does not
// check the signatures themselves. Refused objects are reported by user
// and key ID; the others are stored.
func (s *Service) UploadSignatures(ctx context.Context, signer string, signed map[string]map[string]json.RawMessage) (map[string]map[string]Failure, error) {
	users := []string{signer}
	for u := range signed {
		if u != signer && s.local(u) && len(users) < keysBatch {
			users = append(users, u)
		}
	}
	devKeys, err := s.store.DeviceKeys(ctx, []string{signer})
	if err != nil {
		return nil, fmt.Errorf("load device keys of %s: %w", signer, err)
	}
	cross, err := s.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return nil, fmt.Errorf("load cross-signing keys: %w", err)
	}
	failures := map[string]map[string]Failure{}
	refuse := func(user, keyID, code, msg string) {
		if failures[user] == nil {
			failures[user] = map[string]Failure{}
		}
		failures[user][keyID] = Failure{Code: code, Message: msg}
	}
	stored := false
	for user, objects := range signed {
		for keyID, obj := range objects {
			var sig struct {
				Signatures map[string]map[string]string `json:"signatures"`
			}
			if _, ok := jsonObject(obj); !ok || json.Unmarshal(obj, &sig) != nil || len(sig.Signatures[signer]) == 0 {
				refuse(user, keyID, "M_INVALID_SIGNATURE", "No signatures by "+signer)
				continue
			}
			sigs := sig.Signatures[signer]
			target, typ := signedKey(user, keyID, signer, devKeys, cross)
			if target == "" {
				refuse(user, keyID, "M_NOT_FOUND", "Unknown key")
				continue
			}
			if !sameKey([]byte(target), obj) {
				refuse(user, keyID, "M_INVALID_SIGNATURE", "The signed object does not match the stored key")
				continue
			}
			// Each write also updates the loaded copy, so two objects of one
			// request that sign the same key both count.
			var err error
			switch {
			case typ == "device":
				k := mergeSignatures(target, signer, sigs)
				devKeys[user][keyID] = k
				err = s.store.PutDeviceKeys(ctx, user, keyID, k)
			case user == signer:
				k := mergeSignatures(target, signer, sigs)
				cross[user][typ] = k
				err = s.store.PutCrossSigningKey(ctx, user, typ, k)
			default:
				if cross[signer] == nil {
					cross[signer] = map[string]string{}
				}
				row := userSigningRow(cross[signer][userSigningSigPrefix+user], keyID, sigs)
				cross[signer][userSigningSigPrefix+user] = row
				err = s.store.PutCrossSigningKey(ctx, signer, userSigningSigPrefix+user, row)
			}
			if err != nil {
				return nil, fmt.Errorf("store signature by %s: %w", signer, err)
			}
			stored = true
		}
	}
	if stored {
		if err := s.changed(ctx, signer); err != nil {
			return nil, err
		}
	}
	return failures, nil
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

// mergeSignatures adds signer's sigs to a stored key's signatures. A key
// that is not a JSON object (stored keys always are) is returned as is.
func mergeSignatures(keyJSON, signer string, sigs map[string]string) string {
	k, ok := jsonObject(json.RawMessage(keyJSON))
	if !ok {
		return keyJSON
	}
	var all map[string]map[string]string
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
	k, ok := jsonObject(json.RawMessage(keyJSON))
	if name == "" || !ok {
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
