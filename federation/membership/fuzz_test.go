package membership

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/rooms/pdu"
)

// noKeys knows no server's keys: every signature check fails, as for an
// answer from a server whose keys cannot be fetched.
type noKeys struct{}

func (noKeys) VerifyKey(context.Context, string, string, int64, string) (ed25519.PublicKey, error) {
	return nil, errors.New("no keys")
}

func fuzzJoiner() *Joiner {
	seed := make([]byte, ed25519.SeedSize)
	key := &pdu.SigningKey{ServerName: "b.example", KeyID: "ed25519:k", Private: ed25519.NewKeyFromSeed(seed)}
	return NewJoiner(JoinerConfig{ServerName: "b.example", Key: key, Keys: noKeys{}, Now: func() time.Time { return time.UnixMilli(1) }})
}

// FuzzSignTemplate: any make_join or make_leave template a remote server
// sends is refused or signed, never a panic; a signed one is the user's own
// membership in the room asked for.
func FuzzSignTemplate(f *testing.F) {
	f.Add([]byte(`{"room_id":"!r:a.example","sender":"@u:b.example","type":"m.room.member","state_key":"@u:b.example","content":{"membership":"join"},"prev_events":["$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],"auth_events":[],"depth":3}`), "11")
	f.Add([]byte(`{"sender":"@u:b.example","type":"m.room.member","state_key":"@u:b.example","content":null,"depth":-1}`), "12")
	f.Add([]byte(`[]`), "10")
	j := fuzzJoiner()
	f.Fuzz(func(t *testing.T, raw []byte, version string) {
		if !pdu.Supported(version) {
			return
		}
		ev, err := j.signTemplate(json.RawMessage(raw), version, "!r:a.example", "@u:b.example", "join", map[string]any{"displayname": "U"})
		if err != nil {
			return
		}
		if ev.Sender != "@u:b.example" || ev.StateKey == nil || *ev.StateKey != "@u:b.example" || ev.Type != "m.room.member" {
			t.Fatalf("signed a template that is not the user's membership: %s", ev.Raw)
		}
	})
}

// FuzzCheckAnswer: any send_join answer is refused or checked, never a
// panic; with no keys known, nothing passes.
func FuzzCheckAnswer(f *testing.F) {
	f.Add([]byte(`[{"type":"m.room.create","state_key":"","content":{"room_version":"11"},"room_id":"!r:a.example","sender":"@a:a.example","auth_events":[],"prev_events":[],"depth":1,"origin_server_ts":1,"hashes":{"sha256":"x"},"signatures":{}}]`), []byte(`[]`))
	f.Add([]byte(`[1, "x", null, {}]`), []byte(`[[]]`))
	j := fuzzJoiner()
	ours, err := pdu.Build(pdu.Proto{RoomID: "!r:a.example", Sender: "@u:b.example", Type: "m.room.member", StateKey: strPtr("@u:b.example"),
		Content: json.RawMessage(`{"membership":"join"}`), Depth: 2, OriginServerTS: 1}, "11", j.cfg.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, state, chain []byte) {
		var resp federation.RespSendJoin
		if json.Unmarshal(state, &resp.State) != nil || json.Unmarshal(chain, &resp.AuthChain) != nil {
			return
		}
		if rj, err := j.checkAnswer(context.Background(), "11", "!r:a.example", ours, &resp); err == nil {
			t.Fatalf("an answer passed with no keys known: %d events", len(rj.Events))
		}
	})
}

func strPtr(s string) *string { return &s }
