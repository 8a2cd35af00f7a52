// Package e2ekeys owns end-to-end encryption keys: device identity keys,
// one-time and fallback keys, cross-signing keys and the signatures users
// upload for them, with who may upload, see and claim each. The client API
// and federation (user/keys/query, user/keys/claim, signing-key updates)
// both call it.
//
// Parley stores what clients upload and serves it back; it checks the shape
// of what it stores and who may store it, but never verifies a signature or
// looks inside a key: that is the clients' job, and they do it.
package e2ekeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// The errors the service fails with, each wrapped with %w and a reason.
var (
	// ErrInvalidParam: well-formed but not allowed (a key for another
	// device, two fallback keys of one algorithm, too many claims).
	ErrInvalidParam = errors.New("invalid key parameter")
	// ErrMissingParam: something the upload needs is absent (a master
	// key before any other cross-signing key).
	ErrMissingParam = errors.New("missing key parameter")
	// ErrBadJSON: a key has the wrong shape.
	ErrBadJSON = errors.New("malformed key")
)

func fail(sentinel error, reason string) error { return fmt.Errorf("%w: %s", sentinel, reason) }

const (
	// keysBatch is how many users one store query covers, far below both
	// engines' bound on parameters per statement.
	keysBatch = 500
	// MaxClaims bounds the one-time keys one claim takes; each is a write.
	MaxClaims = 1000
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

// Store is what the service needs of the database. *storage.Store
// implements it.
type Store interface {
	DeviceKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error)
	PutDeviceKeys(ctx context.Context, userID, deviceID, keyJSON string) error
	PutOneTimeKey(ctx context.Context, userID, deviceID, keyID, algorithm, keyJSON string, fallback bool) error
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error)
	ClaimOneTimeKey(ctx context.Context, userID, deviceID, algorithm string) (keyID, keyJSON string, err error)
	CrossSigningKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error)
	PutCrossSigningKey(ctx context.Context, userID, keyType, keyJSON string) error
	DevicesOf(ctx context.Context, userIDs []string) ([]storage.Device, error)
	DeviceListChangesSince(ctx context.Context, viewer string, since, upto int64) ([]string, error)
}

// ListNotifier records that a user's device list or keys changed, so that
// the clients of everyone who shares a room with them re-query the keys.
// *rooms.Service implements it.
type ListNotifier interface {
	DeviceListChanged(ctx context.Context, userID string) error
}

// Service stores and serves the keys of this server's users.
type Service struct {
	// Static after New.
	serverName string
	store      Store
	lists      ListNotifier
	// remote asks other servers; nil until SetRemote (remote.go), which
	// runs before the service is used.
	remote Remote
	// cache holds other servers' users' keys; nil until SetRemoteCache
	// (remote.go), which runs before the service is used.
	cache RemoteCache

	remoteQueries atomic.Int64 // user/keys/query requests sent (remote.go)
}

// New builds a service for the users of serverName.
func New(serverName string, store Store, lists ListNotifier) *Service {
	return &Service{serverName: serverName, store: store, lists: lists}
}

func (s *Service) local(userID string) bool {
	return pdu.ValidUserID(userID) && pdu.Domain(userID) == s.serverName
}

func (s *Service) changed(ctx context.Context, userID string) error {
	if err := s.lists.DeviceListChanged(ctx, userID); err != nil {
		return fmt.Errorf("device list change of %s: %w", userID, err)
	}
	return nil
}

// Upload is what a device uploads at once: its identity keys (nil or JSON
// null for none) and new one-time and fallback keys named
// "algorithm:key_id".
type Upload struct {
	DeviceKeys   json.RawMessage
	OneTimeKeys  map[string]json.RawMessage
	FallbackKeys map[string]json.RawMessage
}

// Upload stores a device's keys and returns how many unclaimed one-time
// keys the server holds for it, per algorithm (signed_curve25519 always
// present). Identity keys must name the uploading device.
func (s *Service) Upload(ctx context.Context, userID, deviceID string, up Upload) (map[string]int, error) {
	changed := false
	if len(up.DeviceKeys) > 0 && string(up.DeviceKeys) != "null" {
		var dk struct {
			UserID   string `json:"user_id"`
			DeviceID string `json:"device_id"`
		}
		if _, ok := jsonObject(up.DeviceKeys); !ok || json.Unmarshal(up.DeviceKeys, &dk) != nil {
			return nil, fail(ErrBadJSON, "device_keys must be an object")
		}
		if dk.UserID != userID || dk.DeviceID != deviceID {
			return nil, fail(ErrInvalidParam, "device_keys must be for the device making the request")
		}
		stored, err := s.store.DeviceKeys(ctx, []string{userID})
		if err != nil {
			return nil, fmt.Errorf("load device keys of %s: %w", userID, err)
		}
		// Keys equal but for signatures are kept as stored: the stored copy
		// may carry cross-signing signatures the client's copy lacks.
		if old, ok := stored[userID][deviceID]; !ok || !sameKey([]byte(old), up.DeviceKeys) {
			if err := s.store.PutDeviceKeys(ctx, userID, deviceID, compact(up.DeviceKeys)); err != nil {
				return nil, fmt.Errorf("store device keys of %s: %w", userID, err)
			}
			changed = true
		}
	}
	if err := s.putOneTimeKeys(ctx, userID, deviceID, up.OneTimeKeys, false); err != nil {
		return nil, err
	}
	if err := s.putOneTimeKeys(ctx, userID, deviceID, up.FallbackKeys, true); err != nil {
		return nil, err
	}
	if changed {
		if err := s.changed(ctx, userID); err != nil {
			return nil, err
		}
	}
	counts, _, err := s.store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count one-time keys of %s: %w", userID, err)
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0 // some clients want it spelled out
	}
	return counts, nil
}

// putOneTimeKeys stores keys named "algorithm:key_id". The full name is the
// stored key ID, so a claim returns it as is.
func (s *Service) putOneTimeKeys(ctx context.Context, userID, deviceID string, keys map[string]json.RawMessage, fallback bool) error {
	seen := map[string]bool{}
	for name, key := range keys {
		alg, id, ok := strings.Cut(name, ":")
		if !ok || alg == "" || id == "" {
			return fail(ErrInvalidParam, "Key names must be algorithm:key_id, not "+name)
		}
		if _, isObject := jsonObject(key); !isObject && !isJSONString(key) {
			return fail(ErrBadJSON, "Key "+name+" must be an object or a string")
		}
		if fallback {
			if seen[alg] {
				return fail(ErrInvalidParam, "At most one fallback key per algorithm")
			}
			seen[alg] = true
		}
		if err := s.store.PutOneTimeKey(ctx, userID, deviceID, name, alg, compact(key), fallback); err != nil {
			return fmt.Errorf("store one-time key of %s: %w", userID, err)
		}
	}
	return nil
}

// Keys is the answer to a key query, by user.
type Keys struct {
	// DeviceKeys maps user -> device -> signed device keys, with
	// unsigned.device_display_name added.
	DeviceKeys map[string]map[string]json.RawMessage
	// Master, SelfSigning and UserSigning map user -> key. A master key
	// carries the signatures the viewer's user-signing key made of it;
	// a user-signing key is only ever the viewer's own.
	Master, SelfSigning, UserSigning map[string]json.RawMessage
}

// Query returns the device and cross-signing keys of the local users in
// want (user -> devices, none meaning all), as viewer may see them. Remote
// users are left out: there is no federation to ask.
func (s *Service) Query(ctx context.Context, viewer string, want map[string][]string) (Keys, error) {
	var users []string
	for u := range want {
		if s.local(u) {
			users = append(users, u)
		}
	}
	own, err := s.store.CrossSigningKeys(ctx, []string{viewer})
	if err != nil {
		return Keys{}, fmt.Errorf("load cross-signing keys of %s: %w", viewer, err)
	}
	out := Keys{DeviceKeys: map[string]map[string]json.RawMessage{},
		Master: map[string]json.RawMessage{}, SelfSigning: map[string]json.RawMessage{}, UserSigning: map[string]json.RawMessage{}}
	for start := 0; start < len(users); start += keysBatch {
		part := users[start:min(start+keysBatch, len(users))]
		keys, err := s.store.DeviceKeys(ctx, part)
		if err != nil {
			return Keys{}, fmt.Errorf("load device keys: %w", err)
		}
		devs, err := s.store.DevicesOf(ctx, part)
		if err != nil {
			return Keys{}, fmt.Errorf("load devices: %w", err)
		}
		names := map[[2]string]string{}
		for _, d := range devs {
			names[[2]string{d.UserID, d.DeviceID}] = d.DisplayName
		}
		cross, err := s.store.CrossSigningKeys(ctx, part)
		if err != nil {
			return Keys{}, fmt.Errorf("load cross-signing keys: %w", err)
		}
		for _, u := range part {
			dk := map[string]json.RawMessage{}
			for device, k := range keys[u] {
				if wanted := want[u]; len(wanted) == 0 || slices.Contains(wanted, device) {
					dk[device] = withDisplayName(k, names[[2]string{u, device}])
				}
			}
			out.DeviceKeys[u] = dk
			if k := cross[u]["master"]; k != "" {
				out.Master[u] = withUserSigningSigs(k, viewer, own[viewer][userSigningSigPrefix+u])
			}
			if k := cross[u]["self_signing"]; k != "" {
				out.SelfSigning[u] = json.RawMessage(k)
			}
			if k := cross[u]["user_signing"]; k != "" && u == viewer {
				out.UserSigning[u] = json.RawMessage(k)
			}
		}
	}
	return out, nil
}

// Claim takes one one-time key (or, with none left, the fallback key) per
// device asked (user -> device -> algorithm), of local users. A device with
// none left is missing from the answer, which maps user -> device ->
// key ID -> key.
func (s *Service) Claim(ctx context.Context, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	n := 0
	for _, devs := range want {
		n += len(devs)
	}
	if n > MaxClaims {
		return nil, fail(ErrInvalidParam, "Too many keys claimed at once")
	}
	out := map[string]map[string]map[string]json.RawMessage{}
	for user, devs := range want {
		if pdu.Domain(user) != s.serverName {
			continue
		}
		for device, alg := range devs {
			keyID, key, err := s.store.ClaimOneTimeKey(ctx, user, device, alg)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("claim a key of %s: %w", user, err)
			}
			if out[user] == nil {
				out[user] = map[string]map[string]json.RawMessage{}
			}
			out[user][device] = map[string]json.RawMessage{keyID: json.RawMessage(key)}
		}
	}
	return out, nil
}

// Changes lists the users sharing a room with viewer whose devices changed
// after stream position from, up to to.
func (s *Service) Changes(ctx context.Context, viewer string, from, to int64) ([]string, error) {
	changed, err := s.store.DeviceListChangesSince(ctx, viewer, from, to)
	if err != nil {
		return nil, fmt.Errorf("device list changes for %s: %w", viewer, err)
	}
	return changed, nil
}
