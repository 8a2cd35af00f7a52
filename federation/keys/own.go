package keys

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// DefaultValidFor is how long a published key response says it is valid,
// when the caller sets nothing. One day is Synapse's default: remote servers
// refetch daily, so a rotated key spreads within a day.
const DefaultValidFor = 24 * time.Hour

// OwnStore records this server's keys; *storage.Store implements it.
type OwnStore interface {
	RecordOwnKey(ctx context.Context, keyID, publicKey string, nowMs int64) ([]storage.OwnKey, error)
}

// Own is this server's key set: the current signing key and the retired
// ones with the time they stopped being used. Static after NewOwn.
type Own struct {
	serverName string
	key        *federation.SigningKey
	old        map[id.KeyID]federation.OldVerifyKey
	validFor   time.Duration
}

// NewOwn records key as the current key in the store (retiring any other
// current key now) and loads the retired ones. validFor 0 means
// DefaultValidFor.
func NewOwn(ctx context.Context, store OwnStore, key *pdu.SigningKey, validFor time.Duration, now time.Time) (*Own, error) {
	pub := key.Public()
	if pub == nil {
		return nil, fmt.Errorf("own keys: no signing key")
	}
	if validFor <= 0 {
		validFor = DefaultValidFor
	}
	fk := &federation.SigningKey{
		ID:   id.KeyID(key.KeyID),
		Pub:  id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)),
		Priv: key.Private,
	}
	rows, err := store.RecordOwnKey(ctx, key.KeyID, string(fk.Pub), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("own keys: %w", err)
	}
	o := &Own{serverName: key.ServerName, key: fk, old: map[id.KeyID]federation.OldVerifyKey{}, validFor: validFor}
	for _, r := range rows {
		if r.ExpiredTS != 0 {
			o.old[id.KeyID(r.KeyID)] = federation.OldVerifyKey{Key: id.SigningKey(r.PublicKey), ExpiredTS: jsontime.UMInt(r.ExpiredTS)}
		}
	}
	return o, nil
}

// ServerName is this server's name, port included when it has one.
func (o *Own) ServerName() string { return o.serverName }

// SigningKey is the current key in mautrix's form, for the request signer.
func (o *Own) SigningKey() *federation.SigningKey { return o.key }

// Response builds this server's signed key response, valid for validFor
// from now.
func (o *Own) Response(now time.Time) (*federation.ServerKeyResponse, error) {
	skr := &federation.ServerKeyResponse{
		ServerName:    o.serverName,
		VerifyKeys:    map[id.KeyID]federation.ServerVerifyKey{o.key.ID: {Key: o.key.Pub}},
		OldVerifyKeys: o.old,
		ValidUntilTS:  jsontime.UM(now.Add(o.validFor)),
	}
	sig, err := o.key.SignJSON(skr)
	if err != nil {
		return nil, fmt.Errorf("sign key response: %w", err)
	}
	skr.Signatures = map[string]map[id.KeyID]string{o.serverName: {o.key.ID: sig}}
	return skr, nil
}

// lookup returns the public key (unpadded base64) of one of our own keys
// and its expiry (0 for the current key).
func (o *Own) lookup(keyID string) (pub string, expiredTS int64, ok bool) {
	if keyID == string(o.key.ID) {
		return string(o.key.Pub), 0, true
	}
	if k, ok := o.old[id.KeyID(keyID)]; ok {
		return string(k.Key), k.ExpiredTS.UnixMilli(), true
	}
	return "", 0, false
}
