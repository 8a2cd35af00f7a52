package authrules

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"

	"github.com/tidwall/gjson"
)

// checkThirdPartyInvite is rule 4.4.1: an invite that redeems an
// m.room.third_party_invite is allowed when the identity server's signed
// block names the target and carries a signature by one of the public keys
// the room's third-party invite event lists. Whether the identity server
// has since revoked the key (key_validity_url) is not an auth rule.
func (s *state) checkThirdPartyInvite(target string, tpi gjson.Result) error {
	ev := s.ev
	if s.membership(target) == "ban" {
		return deny("%s is banned from the room", target)
	}
	signed := tpi.Get("signed")
	if !signed.IsObject() {
		return deny("third_party_invite has no signed block")
	}
	mxid, token := signed.Get("mxid"), signed.Get("token")
	if mxid.Type != gjson.String || token.Type != gjson.String {
		return deny("third_party_invite.signed needs mxid and token")
	}
	if mxid.Str != target {
		return deny("third-party invite is for %s, not %s", mxid.Str, target)
	}
	invite := s.auth[StateKey{"m.room.third_party_invite", token.Str}]
	if invite == nil {
		return deny("no m.room.third_party_invite with token %q is in the room", token.Str)
	}
	if invite.Sender != ev.Sender {
		return deny("the third-party invite was made by %s, not %s", invite.Sender, ev.Sender)
	}
	message := signedBytes(signed)
	for _, pub := range inviteKeys(invite.Content) {
		verified := false
		signed.Get("signatures").ForEach(func(_, keys gjson.Result) bool {
			keys.ForEach(func(keyID, sig gjson.Result) bool {
				if !strings.HasPrefix(keyID.String(), "ed25519:") || sig.Type != gjson.String {
					return true
				}
				raw, err := decodeBase64(sig.Str)
				verified = err == nil && len(raw) == ed25519.SignatureSize && ed25519.Verify(pub, message, raw)
				return !verified
			})
			return !verified
		})
		if verified {
			return nil
		}
	}
	return deny("no signature on the third-party invite matches a key of the room's invite")
}

// inviteKeys collects the ed25519 keys of an m.room.third_party_invite:
// public_key and every public_keys[].public_key.
func inviteKeys(content []byte) []ed25519.PublicKey {
	var keys []ed25519.PublicKey
	add := func(v gjson.Result) {
		if v.Type != gjson.String {
			return
		}
		if k, err := decodeBase64(v.Str); err == nil && len(k) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(k))
		}
	}
	add(gjson.GetBytes(content, "public_key"))
	gjson.GetBytes(content, "public_keys").ForEach(func(_, obj gjson.Result) bool {
		add(obj.Get("public_key"))
		return true
	})
	return keys
}

// signedBytes is the canonical JSON an identity server signed: the signed
// block without "signatures" and "unsigned". Event content is canonical
// (pdu.Parse and pdu.Build guarantee it), so the block's remaining members
// are already sorted and canonically encoded.
func signedBytes(signed gjson.Result) []byte {
	out := []byte{'{'}
	signed.ForEach(func(k, v gjson.Result) bool {
		if key := k.String(); key == "signatures" || key == "unsigned" {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		return true
	})
	return append(out, '}')
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, as
// identity servers have published both.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
