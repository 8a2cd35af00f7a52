package inbound_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// editRaw decodes raw, lets fn change its top-level keys and re-encodes
// it, without fixing hashes or signatures.
func editRaw(t testing.TB, raw []byte, fn func(m map[string]json.RawMessage)) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// proto is ev's proto, to sign it again differently.
func proto(ev *pdu.Event) pdu.Proto {
	return pdu.Proto{
		RoomID: ev.RoomID, Sender: ev.Sender, Type: ev.Type, StateKey: ev.StateKey, Content: ev.Content,
		PrevEvents: ev.PrevEvents, AuthEvents: ev.AuthEvents, Depth: ev.Depth, OriginServerTS: ev.OriginServerTS,
	}
}

func fakeID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "$" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func fakeIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fakeID(strings.Repeat("x", i+1))
	}
	return out
}

// fields are the top-level fields of ev, for Forge.
func fields(ev *pdu.Event) map[string]any {
	m := map[string]any{
		"room_id": ev.RoomID, "sender": ev.Sender, "type": ev.Type, "content": json.RawMessage(ev.Content),
		"prev_events": ev.PrevEvents, "auth_events": ev.AuthEvents, "depth": ev.Depth, "origin_server_ts": ev.OriginServerTS,
	}
	if ev.StateKey != nil {
		m["state_key"] = *ev.StateKey
	}
	return m
}

// TestCheck1Format: events malformed for the room version are dropped
// (never stored); the forms the spec allows are accepted.
func TestCheck1Format(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		msg := fx.base.Clone().BuildMessage(bob, "hello")
		content := func(c string) func(m map[string]json.RawMessage) {
			return func(m map[string]json.RawMessage) { m["content"] = json.RawMessage(c) }
		}
		for _, tc := range []struct {
			name string
			raw  []byte
			want error
		}{
			{"not JSON", []byte(`{"type":`), pdu.ErrInvalid},
			{"not an object", []byte(`[1,2]`), pdu.ErrInvalid},
			{"integer above 2^53-1", editRaw(t, msg.Raw, content(`{"body":"x","msgtype":"m.text","n":9007199254740992}`)), pdu.ErrInvalid},
			{"integer below -(2^53-1)", editRaw(t, msg.Raw, content(`{"body":"x","msgtype":"m.text","n":-9007199254740992}`)), pdu.ErrInvalid},
			{"fraction", editRaw(t, msg.Raw, content(`{"body":"x","msgtype":"m.text","n":1.5}`)), pdu.ErrInvalid},
			{"depth above 2^53-1", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["depth"] = json.RawMessage(`9007199254740992`) }), pdu.ErrInvalid},
			{"no sender", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { delete(m, "sender") }), pdu.ErrInvalid},
			{"no room_id", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { delete(m, "room_id") }), pdu.ErrInvalid},
			{"room_id not a string", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["room_id"] = json.RawMessage(`7`) }), pdu.ErrInvalid},
			{"no prev_events", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { delete(m, "prev_events") }), pdu.ErrInvalid},
			{"21 prev_events", fx.base.Clone().Build(pdu.Proto{Sender: bob, Type: "m.room.message", Content: json.RawMessage(`{}`), PrevEvents: fakeIDs(21)}).Raw, pdu.ErrInvalid},
			{"11 auth_events", fx.base.Clone().Build(pdu.Proto{Sender: bob, Type: "m.room.message", Content: json.RawMessage(`{}`), AuthEvents: fakeIDs(11)}).Raw, pdu.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := fx.store.Persists()
				v, err := fx.p.Check(context.Background(), tc.raw)
				if !errors.Is(err, inbound.ErrDropped) || !errors.Is(err, tc.want) {
					t.Fatalf("Check = %v, %v; want an error matching ErrDropped and %v", v, err, tc.want)
				}
				if _, _, err := fx.p.Accept(context.Background(), tc.raw); !errors.Is(err, inbound.ErrDropped) {
					t.Errorf("Accept = %v, want ErrDropped", err)
				}
				if got := fx.store.Persists(); got != before {
					t.Errorf("Persist calls = %d, want %d: a dropped event is never stored", got, before)
				}
			})
		}

		t.Run("unknown room", func(t *testing.T) {
			raw := editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["room_id"] = json.RawMessage(`"!elsewhere:remote.example"`) })
			if _, err := fx.p.Check(context.Background(), raw); !errors.Is(err, inbound.ErrUnknownRoom) {
				t.Errorf("Check = %v, want ErrUnknownRoom", err)
			}
		})

		withOrigin := fields(msg)
		withOrigin["origin"] = "remote.example"
		for _, tc := range []struct {
			name string
			raw  []byte
		}{
			{"as built", msg.Raw},
			{"with unsigned", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["unsigned"] = json.RawMessage(`{"age":1234,"x":{"y":[1,2]}}`) })},
			{"with event_id", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["event_id"] = json.RawMessage(`"` + msg.ID + `"`) })},
			{"with origin", remote.Forge(t, version, withOrigin)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v, err := fx.p.Check(context.Background(), tc.raw)
				if err != nil {
					t.Fatalf("Check = %v, want accepted", err)
				}
				if v.Kind != inbound.Accepted || v.Redacted {
					t.Errorf("Check = %s (%s), redacted %v; want accepted, not redacted", v.Kind, v.Reason, v.Redacted)
				}
				if strings.Contains(string(v.Raw), "unsigned") || strings.Contains(string(v.Raw), "event_id") {
					t.Errorf("Raw = %s, want no unsigned or event_id", v.Raw)
				}
				if tc.name != "with origin" && v.Event.ID != msg.ID {
					t.Errorf("event ID = %s, want %s: unsigned and event_id are not hashed", v.Event.ID, msg.ID)
				}
			})
		}
	})
}

// TestCheck2Signatures: an event without a valid signature from every
// server that must sign it is dropped.
func TestCheck2Signatures(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		msg := f.BuildMessage(bob, "hello")

		seed := sha256.Sum256([]byte("an impostor"))
		impostor := &pdu.SigningKey{ServerName: remote.Name, KeyID: remote.Key.KeyID, Private: ed25519.NewKeyFromSeed(seed[:])}
		forged, err := pdu.Build(proto(msg), version, impostor)
		if err != nil {
			t.Fatal(err)
		}
		otherSig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(remote.Key.Private, []byte("something else")))
		carolMsg := fields(msg)
		carolMsg["sender"] = carol

		// A restricted-join style member event: carol joins, naming alice
		// as the user who authorised it, so remote.example must sign too.
		join := f.BuildState(carol, "m.room.member", carol, `{"join_authorised_via_users_server":"`+alice+`","membership":"join"}`)
		cosigned, err := join.AddSignature(version, remote.Key)
		if err != nil {
			t.Fatal(err)
		}

		unknownKey := &pdu.SigningKey{ServerName: remote.Name, KeyID: "ed25519:unknown", Private: remote.Key.Private}
		withUnknownKey, err := pdu.Build(proto(msg), version, unknownKey)
		if err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name    string
			raw     []byte
			dropped bool
			want    error
		}{
			{"signed by the sender's server", msg.Raw, false, nil},
			{"signed with another key under the server's key ID", forged.Raw, true, nil},
			{"signed with a key ID the server does not know", withUnknownKey.Raw, true, inbound.ErrKeyUnavailable},
			{"signature does not verify", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) {
				m["signatures"] = json.RawMessage(`{"remote.example":{"` + remote.Key.KeyID + `":"` + otherSig + `"}}`)
			}), true, nil},
			{"no signatures", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) { m["signatures"] = json.RawMessage(`{}`) }), true, nil},
			{"only a non-ed25519 signature", editRaw(t, msg.Raw, func(m map[string]json.RawMessage) {
				m["signatures"] = json.RawMessage(`{"remote.example":{"curve:x":"` + otherSig + `"}}`)
			}), true, nil},
			{"signed by another server than the sender's", remote.Forge(t, version, carolMsg), true, nil},
			{"restricted join without the authorising server's signature", join.Raw, true, nil},
			{"restricted join signed by both servers", cosigned.Raw, false, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v, err := fx.p.Check(context.Background(), tc.raw)
				if !tc.dropped {
					if err != nil {
						t.Fatalf("Check = %v, want a verdict", err)
					}
					return
				}
				want := tc.want
				if want == nil {
					want = pdu.ErrBadSignature
				}
				if !errors.Is(err, inbound.ErrDropped) || !errors.Is(err, want) {
					t.Fatalf("Check = %v, %v; want ErrDropped and %v", v, err, want)
				}
			})
		}
	})
}

// TestCheck2ContentHash: an event whose content hash fails goes on as its
// redacted copy, which is what is checked and stored.
func TestCheck2ContentHash(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		tamper := func(ev *pdu.Event) []byte {
			return editRaw(t, ev.Raw, func(m map[string]json.RawMessage) {
				m["content"] = json.RawMessage(`{"body":"tampered","msgtype":"m.text"}`)
			})
		}
		for _, tc := range []struct {
			name string
			ev   *pdu.Event
			want inbound.Kind
		}{
			{"member's message", f.BuildMessage(bob, "hello"), inbound.Accepted},
			{"non-member's message", f.BuildMessage(carol, "hello"), inbound.Rejected},
			// Last: it moves the room on. Its redacted copy becomes state.
			{"state event", f.BuildState(alice, "m.room.topic", "", `{"topic":"hello"}`), inbound.Accepted},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v, _, err := fx.p.Accept(context.Background(), tamper(tc.ev))
				if err != nil {
					t.Fatalf("Accept = %v, want a verdict", err)
				}
				if v.Kind != tc.want || !v.Redacted {
					t.Errorf("Accept = %s (%s), redacted %v; want %s, redacted", v.Kind, v.Reason, v.Redacted, tc.want)
				}
				if v.Event.ID != tc.ev.ID {
					t.Errorf("event ID = %s, want %s", v.Event.ID, tc.ev.ID)
				}
				if string(v.Event.Content) != `{}` || strings.Contains(string(v.Raw), "tampered") || strings.Contains(string(v.Raw), "hello") {
					t.Errorf("stored content = %s, raw %s; want the redacted copy", v.Event.Content, v.Raw)
				}
				if got := fx.store.Kind(tc.ev.ID); got != tc.want {
					t.Errorf("stored as %s, want %s", got, tc.want)
				}
				if tc.ev.IsState() {
					if got := fx.store.CurrentState()[key(tc.ev.Type, *tc.ev.StateKey)]; got != tc.ev.ID {
						t.Errorf("current %s = %s, want the redacted event %s", tc.ev.Type, got, tc.ev.ID)
					}
				}
			})
		}
	})
}

// versionSource reports another room version than its Source holds.
type versionSource struct {
	inbound.Source
	version string
}

func (v versionSource) RoomVersion(context.Context, string) (string, error) { return v.version, nil }

// TestCheck1UnsupportedVersion: rooms of versions package pdu does not
// parse get their events dropped, not misread.
func TestCheck1UnsupportedVersion(t *testing.T) {
	fx := newFixture(t, "11")
	for _, version := range []string{"1", "9", "13", ""} {
		p := inbound.New(versionSource{fx.store, version}, remotetestKeys(), fx.store)
		if _, err := p.Check(context.Background(), fx.base.Clone().BuildMessage(bob, "hi").Raw); !errors.Is(err, inbound.ErrDropped) {
			t.Errorf("Check in a version %q room = %v, want ErrDropped", version, err)
		}
	}
}
