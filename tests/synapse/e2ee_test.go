package synapse_test

import (
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/homeserver/hstest"
)

const (
	olmAlg    = "m.olm.v1.curve25519-aes-sha2"
	megolmAlg = "m.megolm.v1.aes-sha2"
)

// TestSynapseE2EE: a Parley user and a Synapse user talk end to end
// encrypted, as a client does it, with goolm (mautrix-go's pure-Go Olm and
// Megolm) in the test. Each device uploads signed device keys and one-time
// keys to its own server. Each side then queries the other's device keys
// and claims a one-time key through its own server (so across federation),
// checks the signatures, opens an Olm session and sends an encrypted
// to-device message the other decrypts. Finally each shares a Megolm
// session over Olm and sends an encrypted room message that the other
// decrypts.
func TestSynapseE2EE(t *testing.T) {
	syn := needSynapse(t)
	p := startParley(t, hstestSQLite)
	alice := newDevice(t, p.Register(t, "alice"))
	bob := newDevice(t, syn.Register(t, uniq("bob")))

	for _, d := range []struct {
		name     string
		from, to *device
	}{
		{"Parley to Synapse", alice, bob},
		{"Synapse to Parley", bob, alice},
	} {
		t.Run(d.name, func(t *testing.T) {
			from, to := d.from.withT(t), d.to.withT(t)
			their := from.queryAndClaim(to)
			msg := uniq("secret")
			from.sendOlm(their, "org.parley.test.secret", map[string]any{"text": msg})
			typ, content := to.receiveOlm(from)
			if typ != "org.parley.test.secret" || content.Get("text").String() != msg {
				t.Errorf("%s decrypted %s %s, want org.parley.test.secret with %q", to.c.UserID, typ, content.Raw, msg)
			}
		})
	}

	for _, d := range []struct {
		name       string
		from, to   *device
		fromServer string
	}{
		{"Megolm room message, Parley to Synapse", alice, bob, p.FedName},
		{"Megolm room message, Synapse to Parley", bob, alice, syn.Name},
	} {
		t.Run(d.name, func(t *testing.T) {
			a, b := d.from.withT(t), d.to.withT(t)
			room := a.c.CreateRoom(map[string]any{"preset": "public_chat", "initial_state": []map[string]any{{
				"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": megolmAlg}}}})
			if st, res := joinVia(b.c, room, d.fromServer); st != 200 {
				t.Fatalf("%s joins = %d %s", b.c.UserID, st, res.Raw)
			}
			waitMembership(t, a.c, room, b.c.UserID, "join")

			out, err := session.NewMegolmOutboundSession()
			if err != nil {
				t.Fatal(err)
			}
			// Share the session with the other device over the Olm session opened above.
			a.sendOlm(a.peers[b.c.UserID], "m.room_key", map[string]any{
				"algorithm": megolmAlg, "room_id": room, "session_id": out.ID(), "session_key": out.Key()})
			typ, key := b.receiveOlm(a)
			if typ != "m.room_key" {
				t.Fatalf("%s got %s, want m.room_key", b.c.UserID, typ)
			}
			in, err := session.NewMegolmInboundSession([]byte(key.Get("session_key").String()))
			if err != nil {
				t.Fatal(err)
			}

			text := uniq("encrypted hello")
			plain, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": room,
				"content": map[string]any{"msgtype": "m.text", "body": text}})
			ct, err := out.Encrypt(plain)
			if err != nil {
				t.Fatal(err)
			}
			a.c.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.encrypted/"+uniq("txn"), map[string]any{
				"algorithm": megolmAlg, "sender_key": a.curve, "device_id": a.c.DeviceID,
				"session_id": out.ID(), "ciphertext": string(ct)})

			var got gjson.Result
			hstest.Eventually(t, b.c.UserID+"'s server holds the encrypted message", func() bool {
				_, res := b.c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=20", nil)
				for _, ev := range res.Get("chunk").Array() {
					if ev.Get("type").String() == "m.room.encrypted" && ev.Get("content.session_id").String() == string(out.ID()) {
						got = ev
						return true
					}
				}
				return false
			})
			dec, _, err := in.Decrypt([]byte(got.Get("content.ciphertext").String()))
			if err != nil {
				t.Fatalf("%s decrypts: %v", b.c.UserID, err)
			}
			if body := gjson.GetBytes(dec, "content.body").String(); body != text {
				t.Errorf("%s decrypted %s, want body %q", b.c.UserID, dec, text)
			}
		})
	}
}

// device is one client device with an Olm account.
type device struct {
	t     *testing.T
	c     *hstest.Client
	acc   *account.Account
	ed    id.Ed25519
	curve id.Curve25519
	// peers: the Olm sessions this device opened, by peer user ID.
	peers map[string]*peer
	// inbound: the Olm sessions others opened with it, by their curve key.
	inbound map[id.Curve25519]olm.Session
	since   *string // sync position for receiveOlm, shared by withT's copies
}

// peer is another device as this one knows it, with the session to it.
type peer struct {
	user, device string
	ed           id.Ed25519
	curve        id.Curve25519
	s            olm.Session
}

// newDevice makes an Olm account for c's device and uploads its signed
// device keys and five signed one-time keys.
func newDevice(t *testing.T, c *hstest.Client) *device {
	t.Helper()
	acc, err := account.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	ed, curve, err := acc.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, c: c, acc: acc, ed: ed, curve: curve, peers: map[string]*peer{}, inbound: map[id.Curve25519]olm.Session{}}
	keys := map[string]any{
		"user_id": c.UserID, "device_id": c.DeviceID, "algorithms": []string{olmAlg, megolmAlg},
		"keys": map[string]any{"ed25519:" + c.DeviceID: ed, "curve25519:" + c.DeviceID: curve},
	}
	d.sign(keys)
	if err := acc.GenOneTimeKeys(5); err != nil {
		t.Fatal(err)
	}
	otks, _ := acc.OneTimeKeys()
	signed := map[string]any{}
	for keyID, k := range otks {
		otk := map[string]any{"key": k}
		d.sign(otk)
		signed["signed_curve25519:"+keyID] = otk
	}
	acc.MarkKeysAsPublished()
	res := c.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": keys, "one_time_keys": signed})
	if n := res.Get("one_time_key_counts.signed_curve25519").Int(); n != 5 {
		t.Fatalf("%s uploaded %d one-time keys, want 5: %s", c.UserID, n, res.Raw)
	}
	since := c.Sync("", 0).Get("next_batch").String()
	d.since = &since
	return d
}

func (d *device) withT(t *testing.T) *device {
	dd := *d
	dd.t, dd.c = t, d.c.WithT(t)
	return &dd
}

// sign adds the device's signature to a JSON object, as the spec's
// "Signing JSON" says.
func (d *device) sign(obj map[string]any) {
	raw, err := canonicaljson.Marshal(obj)
	if err != nil {
		d.t.Fatal(err)
	}
	sig, err := d.acc.Sign(raw)
	if err != nil {
		d.t.Fatal(err)
	}
	obj["signatures"] = map[string]any{d.c.UserID: map[string]any{"ed25519:" + d.c.DeviceID: string(sig)}}
}

// queryAndClaim asks d's own server for to's device keys and one of its
// one-time keys, checks both signatures, and opens an Olm session.
func (d *device) queryAndClaim(to *device) *peer {
	t := d.t
	t.Helper()
	u, dev := to.c.UserID, to.c.DeviceID
	res := d.c.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{u: []string{}}})
	keys := res.Get("device_keys." + gjEsc(u) + "." + gjEsc(dev))
	if !keys.Exists() {
		t.Fatalf("%s's keys/query for %s = %s, want device %s", d.c.UserID, u, res.Raw, dev)
	}
	ed := id.Ed25519(keys.Get("keys." + gjEsc("ed25519:"+dev)).String())
	curve := id.Curve25519(keys.Get("keys." + gjEsc("curve25519:"+dev)).String())
	if ed != to.ed || curve != to.curve {
		t.Fatalf("keys/query gave %s/%s for %s, want %s/%s", ed, curve, dev, to.ed, to.curve)
	}
	if ok, err := signatures.VerifySignatureJSON(json.RawMessage(keys.Raw), id.UserID(u), dev, ed); !ok || err != nil {
		t.Fatalf("device keys of %s do not verify (%v): %s", dev, err, keys.Raw)
	}
	res = d.c.MustDo("POST", "/_matrix/client/v3/keys/claim", map[string]any{
		"one_time_keys": map[string]any{u: map[string]any{dev: "signed_curve25519"}}})
	var otk gjson.Result
	res.Get("one_time_keys." + gjEsc(u) + "." + gjEsc(dev)).ForEach(func(_, v gjson.Result) bool {
		otk = v
		return false
	})
	if !otk.Exists() {
		t.Fatalf("%s's keys/claim for %s = %s, want a one-time key", d.c.UserID, dev, res.Raw)
	}
	if ok, err := signatures.VerifySignatureJSON(json.RawMessage(otk.Raw), id.UserID(u), dev, ed); !ok || err != nil {
		t.Fatalf("one-time key of %s does not verify (%v): %s", dev, err, otk.Raw)
	}
	s, err := d.acc.NewOutboundSession(curve, id.Curve25519(otk.Get("key").String()))
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{user: u, device: dev, ed: ed, curve: curve, s: s}
	d.peers[u] = p
	return p
}

// sendOlm encrypts an event for the peer with Olm and sends it to-device.
func (d *device) sendOlm(p *peer, typ string, content map[string]any) {
	t := d.t
	t.Helper()
	plain, _ := json.Marshal(map[string]any{"type": typ, "content": content,
		"sender": d.c.UserID, "sender_device": d.c.DeviceID, "keys": map[string]any{"ed25519": d.ed},
		"recipient": p.user, "recipient_keys": map[string]any{"ed25519": p.ed}})
	msgType, ct, err := p.s.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	d.c.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/"+uniq("txn"), map[string]any{
		"messages": map[string]any{p.user: map[string]any{p.device: map[string]any{
			"algorithm": olmAlg, "sender_key": d.curve,
			"ciphertext": map[string]any{string(p.curve): map[string]any{"type": int(msgType), "body": string(ct)}}}}}})
}

// receiveOlm waits for an Olm message from the sender's device on d's
// /sync, decrypts it, checks who it is for and from, and returns its type
// and content.
func (d *device) receiveOlm(from *device) (string, gjson.Result) {
	t := d.t
	t.Helper()
	var enc gjson.Result
	hstest.Eventually(t, d.c.UserID+" receives an encrypted to-device message", func() bool {
		res := d.c.Sync(*d.since, 500)
		*d.since = res.Get("next_batch").String()
		for _, ev := range res.Get("to_device.events").Array() {
			if ev.Get("type").String() == "m.room.encrypted" && ev.Get("sender").String() == from.c.UserID {
				enc = ev
				return true
			}
		}
		return false
	})
	if alg := enc.Get("content.algorithm").String(); alg != olmAlg {
		t.Fatalf("algorithm %q, want %s", alg, olmAlg)
	}
	mine := enc.Get("content.ciphertext." + gjEsc(string(d.curve)))
	body, msgType := mine.Get("body").String(), id.OlmMsgType(mine.Get("type").Int())
	s := d.inbound[from.curve]
	if s == nil {
		if msgType != id.OlmMsgTypePreKey {
			t.Fatalf("first message from %s is of type %d, want a pre-key message", from.c.UserID, msgType)
		}
		var err error
		if s, err = d.acc.NewInboundSession(body); err != nil {
			t.Fatalf("inbound Olm session: %v", err)
		}
		d.inbound[from.curve] = s
	}
	plain, err := s.Decrypt(body, msgType)
	if err != nil {
		t.Fatalf("%s decrypts: %v", d.c.UserID, err)
	}
	pj := gjson.ParseBytes(plain)
	if pj.Get("sender").String() != from.c.UserID || pj.Get("recipient").String() != d.c.UserID ||
		pj.Get("recipient_keys.ed25519").String() != string(d.ed) || pj.Get("keys.ed25519").String() != string(from.ed) {
		t.Fatalf("Olm payload names the wrong parties: %s", plain)
	}
	return pj.Get("type").String(), pj.Get("content")
}
