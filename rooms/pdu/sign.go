package pdu

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/tidwall/gjson"
)

// VerifySignature checks serverName's signature under keyID on e with pub.
// The signature covers the redacted event, so it verifies equally on a
// full or a redacted copy; which servers must have signed is
// RequiredSigners' business, and fetching pub is the caller's.
func (e *Event) VerifySignature(roomVersion, serverName, keyID string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key for %s %s is %d bytes, want %d", ErrBadSignature, serverName, keyID, len(pub), ed25519.PublicKeySize)
	}
	members, ok := objectMembers(e.Raw)
	if !ok {
		return fmt.Errorf("%w: event %s has no valid JSON", ErrInvalid, e.ID)
	}
	encoded, found := lookupSignature(findMember(members, "signatures"), serverName, keyID)
	if !found {
		return fmt.Errorf("%w: event %s has no signature from %s with %s", ErrBadSignature, e.ID, serverName, keyID)
	}
	sig, err := decodeBase64(encoded)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: event %s has a malformed signature from %s with %s", ErrBadSignature, e.ID, serverName, keyID)
	}
	if !ed25519.Verify(pub, signingBytes(members, roomVersion), sig) {
		return fmt.Errorf("%w: event %s signature from %s with %s does not verify", ErrBadSignature, e.ID, serverName, keyID)
	}
	return nil
}

// lookupSignature finds signatures[server][keyID] without gjson paths,
// because server names contain dots that gjson would treat as separators.
func lookupSignature(sigs []byte, server, keyID string) (string, bool) {
	var out string
	var found bool
	gjson.ParseBytes(sigs).ForEach(func(s, keys gjson.Result) bool {
		if s.String() != server {
			return true
		}
		keys.ForEach(func(k, v gjson.Result) bool {
			if k.String() == keyID && v.Type == gjson.String {
				out, found = v.Str, true
				return false
			}
			return true
		})
		return false
	})
	return out, found
}

// SignatureKeyIDs lists the key IDs serverName signed e with, sorted, so the
// caller knows which verify keys to fetch.
func (e *Event) SignatureKeyIDs(serverName string) []string {
	members, _ := objectMembers(e.Raw)
	var ids []string
	gjson.ParseBytes(findMember(members, "signatures")).ForEach(func(s, keys gjson.Result) bool {
		if s.String() == serverName {
			keys.ForEach(func(k, _ gjson.Result) bool {
				ids = append(ids, k.String())
				return true
			})
		}
		return true
	})
	sort.Strings(ids)
	return ids
}

// RequiredSigners returns the servers whose valid signatures e must carry
// to pass the signature checks on receipt: the sender's server, except for
// an invite made from a third-party invite (which any server may send), and
// for a member event naming join_authorised_via_users_server, that user's
// server too (auth rule 4.2; authrules.Check only sees that a signature is
// present, the caller must verify it).
func (e *Event) RequiredSigners() []string {
	var out []string
	membership := gjson.GetBytes(e.Content, "membership").Str
	isMember := e.Type == "m.room.member"
	if !(isMember && membership == "invite" && gjson.GetBytes(e.Content, "third_party_invite").Exists()) {
		out = append(out, Domain(e.Sender))
	}
	if via := gjson.GetBytes(e.Content, "join_authorised_via_users_server"); isMember && via.Type == gjson.String {
		if d := Domain(via.Str); d != "" && (len(out) == 0 || d != out[0]) {
			out = append(out, d)
		}
	}
	return out
}

// AddSignature returns a copy of e that also carries key's signature. It is
// for events another server built and this one must co-sign: an invite to
// a local user, or a restricted join authorised by a local user.
func (e *Event) AddSignature(roomVersion string, key *SigningKey) (*Event, error) {
	if key == nil || len(key.Private) != ed25519.PrivateKeySize || !validKeyID(key.KeyID) {
		return nil, fmt.Errorf("%w: unusable signing key", ErrInvalid)
	}
	members, ok := objectMembers(e.Raw)
	if !ok {
		return nil, fmt.Errorf("%w: event %s has no valid JSON", ErrInvalid, e.ID)
	}
	sig := ed25519.Sign(key.Private, signingBytes(members, roomVersion))
	mine := member{key.KeyID, appendString(nil, base64.RawStdEncoding.EncodeToString(sig))}

	var servers []member
	found := false
	gjson.ParseBytes(findMember(members, "signatures")).ForEach(func(s, keys gjson.Result) bool {
		if s.String() != key.ServerName {
			servers = append(servers, member{s.String(), []byte(keys.Raw)})
			return true
		}
		// Keep this server's other keys; replace the one being signed with.
		found = true
		inner := []member{mine}
		keys.ForEach(func(k, v gjson.Result) bool {
			if k.String() != key.KeyID {
				inner = append(inner, member{k.String(), []byte(v.Raw)})
			}
			return true
		})
		servers = append(servers, member{key.ServerName, encodeObject(inner)})
		return true
	})
	if !found {
		servers = append(servers, member{key.ServerName, encodeObject([]member{mine})})
	}

	out := make([]member, 0, len(members))
	for _, m := range members {
		if m.key == "signatures" {
			m.raw = encodeObject(servers)
		}
		out = append(out, m)
	}
	raw := encodeObject(out)
	if len(raw) > maxPDUBytes {
		return nil, fmt.Errorf("%w: %w: signed event is %d bytes, over the %d-byte limit", ErrInvalid, ErrTooLarge, len(raw), maxPDUBytes)
	}
	cp := *e
	cp.Raw = raw
	return &cp, nil
}
