//go:build goexperiment.jsonv2

// Cross-checks against mautrix's federation/eventauth, which only builds
// with GOEXPERIMENT=jsonv2: CI runs them with GOEXPERIMENT=jsonv2 go test ./rooms/...
//
// Not cross-checked, on purpose:
//   - third-party invites: mautrix v0.32.0 reads the public keys from the
//     member event instead of the m.room.third_party_invite event and so
//     refuses every such invite; TestThirdPartyInvite covers Parley's rules.
//   - v10 rooms whose create content names a creator other than the sender:
//     mautrix takes the sender, the spec (and Synapse) content.creator.
//   - create events without room_version, with a mismatching one, or
//     without the empty state key, which Parley refuses on top of the spec.
//
// mautrix v0.32.0 panics (nil dereference in allowPowerChangeMap) when a
// power levels event removes a users entry at or above the sender's level;
// mautrixPanics lists the scenarios that hit it, and Parley must refuse them.

package authrules

import (
	"encoding/base64"
	jsonv2 "encoding/json/v2"
	"testing"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
	"maunium.net/go/mautrix/federation/eventauth"
	mpdu "maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

func toMautrix(t testing.TB, ev *pdu.Event) *mpdu.PDU {
	t.Helper()
	var p mpdu.PDU
	if err := jsonv2.Unmarshal(ev.Raw, &p); err != nil {
		t.Fatalf("mautrix cannot decode %s: %v", ev.Raw, err)
	}
	return &p
}

// mautrixPanics are scenarios where mautrix panics instead of deciding.
var mautrixPanics = map[string]bool{"remove equal user": true}

// authorize calls mautrix, turning its panic into a flag.
func authorize(rv id.RoomVersion, ev *mpdu.PDU, pre []*mpdu.PDU, get eventauth.GetEventsFunc) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
		}
	}()
	return false, eventauth.Authorize(rv, ev, pre, get, mautrixKeys)
}

func mautrixKeys(server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	k := testKey(server)
	if string(keyID) != k.KeyID {
		return "", time.Time{}, nil
	}
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(k.Public())), time.UnixMilli(1 << 50), nil
}

// mautrixEvents serves every event the room has seen, by ID.
func (r *room) mautrixEvents(t testing.TB) eventauth.GetEventsFunc {
	byID := map[id.EventID]*mpdu.PDU{}
	for _, ev := range r.log {
		byID[id.EventID(ev.ID)] = toMautrix(t, ev)
	}
	return func(ids []id.EventID) ([]*mpdu.PDU, error) {
		out := make([]*mpdu.PDU, len(ids))
		for i, eid := range ids {
			out[i] = byID[eid]
		}
		return out, nil
	}
}

// TestCrossCheckScenarios runs every scenario through both
// implementations twice: against current state (mautrix's precomputed auth
// events, our Check with a state map), and against the event's own
// auth_events (mautrix's full path, our SelectAuthEvents then Check).
func TestCrossCheckScenarios(t *testing.T) {
	for _, v := range []string{"10", "11"} {
		rv := id.RoomVersion(v)
		for _, s := range allScenarios() {
			r := newRoom(t, v)
			ev := s.prepare(r)
			auth := r.authFor(ev)
			var precomputed []*mpdu.PDU
			for _, ae := range auth {
				precomputed = append(precomputed, toMautrix(t, ae))
			}
			ours := Check(v, ev, auth)
			panicked, theirs := authorize(rv, toMautrix(t, ev), precomputed, r.mautrixEvents(t))
			if panicked != mautrixPanics[s.name] || (panicked && ours == nil) {
				t.Errorf("Check(v%s %s) = %v; mautrix panicked: %v, want %v and a refusal", v, s.name, ours, panicked, mautrixPanics[s.name])
				continue
			}
			if !panicked && (ours == nil) != (theirs == nil) {
				t.Errorf("Check(v%s %s, state) = %v, mautrix %v", v, s.name, ours, theirs)
			}

			var listed []*pdu.Event
			for _, aid := range ev.AuthEvents {
				for _, known := range r.log {
					if known.ID == aid {
						listed = append(listed, known)
					}
				}
			}
			selected, ours := SelectAuthEvents(ev, listed)
			if ours == nil {
				ours = Check(v, ev, selected)
			}
			panicked, theirs = authorize(rv, toMautrix(t, ev), nil, r.mautrixEvents(t))
			if !panicked && (ours == nil) != (theirs == nil) {
				t.Errorf("Check(v%s %s, auth_events) = %v, mautrix %v", v, s.name, ours, theirs)
			}
		}
	}
}

// TestCrossCheckAuthEventLists holds SelectAuthEvents to mautrix's rule 2
// on malformed auth_events lists.
func TestCrossCheckAuthEventLists(t *testing.T) {
	for _, v := range []string{"10", "11"} {
		r := newRoom(t, v)
		other := newRoom(t, v)
		other.id = "!other:example.org"
		foreign := other.apply(other.build(other.proto(alice, "m.room.name", new(string), `{"name":"x"}`)))
		r.log = append(r.log, foreign)
		joinRules := r.state[StateKey{"m.room.join_rules", ""}]
		tests := map[string]func(p *pdu.Proto){
			"valid":          func(p *pdu.Proto) {},
			"duplicate":      func(p *pdu.Proto) { p.AuthEvents = append(p.AuthEvents, p.AuthEvents[0]) },
			"not selected":   func(p *pdu.Proto) { p.AuthEvents = append(p.AuthEvents, joinRules.ID) },
			"other room":     func(p *pdu.Proto) { p.AuthEvents = append(p.AuthEvents, foreign.ID) },
			"missing create": func(p *pdu.Proto) { p.AuthEvents = p.AuthEvents[1:] },
			"message":        func(p *pdu.Proto) { p.AuthEvents = append(p.AuthEvents, r.log[len(r.log)-2].ID) },
		}
		for name, edit := range tests {
			p := r.proto(bob, "m.room.message", nil, `{"body":"x"}`)
			edit(&p)
			ev := r.build(p)
			var listed []*pdu.Event
			for _, aid := range ev.AuthEvents {
				for _, known := range r.log {
					if known.ID == aid {
						listed = append(listed, known)
					}
				}
			}
			selected, ours := SelectAuthEvents(ev, listed)
			if ours == nil {
				ours = Check(v, ev, selected)
			}
			theirs := eventauth.Authorize(id.RoomVersion(v), toMautrix(t, ev), nil, r.mautrixEvents(t), mautrixKeys)
			if (ours == nil) != (theirs == nil) {
				t.Errorf("SelectAuthEvents+Check(v%s %s) = %v, mautrix %v", v, name, ours, theirs)
			}
		}
	}
}

// TestCrossCheckCreate compares rule 1 on the create events both
// implementations define the same way.
func TestCrossCheckCreate(t *testing.T) {
	for _, tt := range []struct{ name, version, roomID, content string }{
		{"v11", "11", "!r:example.org", `{"room_version":"11"}`},
		{"v11 with creator", "11", "!r:example.org", `{"creator":"@alice:example.org","room_version":"11"}`},
		{"v10", "10", "!r:example.org", `{"creator":"@alice:example.org","room_version":"10"}`},
		{"v10 without creator", "10", "!r:example.org", `{"room_version":"10"}`},
		{"room on another server", "11", "!r:other.org", `{"room_version":"11"}`},
	} {
		ev, err := pdu.Build(pdu.Proto{RoomID: tt.roomID, Sender: alice, Type: "m.room.create", StateKey: new(string),
			Content: []byte(tt.content), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1}, tt.version, testKey("example.org"))
		if err != nil {
			t.Fatal(err)
		}
		ours := Check(tt.version, ev, nil)
		theirs := eventauth.Authorize(id.RoomVersion(tt.version), toMautrix(t, ev), nil, nil, mautrixKeys)
		if (ours == nil) != (theirs == nil) {
			t.Errorf("Check(create %s) = %v, mautrix %v", tt.name, ours, theirs)
		}
	}
}

// TestCrossCheckV12 holds the version 12 rules (MSC4289 creators, MSC4291
// create event named by the room ID) to mautrix v0.32, which knows the
// version: each case against current state (mautrix takes the create
// event from the room ID, so it is left out of its precomputed events) and
// against the event's own auth_events.
func TestCrossCheckV12(t *testing.T) {
	for _, tt := range v12Cases() {
		r, ev := tt.prepare(t)
		auth := r.authFor(ev)
		var precomputed []*mpdu.PDU
		for k, ae := range auth {
			if k.Type != "m.room.create" {
				precomputed = append(precomputed, toMautrix(t, ae))
			}
		}
		ours := Check("12", ev, auth)
		panicked, theirs := authorize(id.RoomV12, toMautrix(t, ev), precomputed, r.mautrixEvents(t))
		if panicked || (ours == nil) != (theirs == nil) {
			t.Errorf("Check(v12 %s, state) = %v, mautrix %v (panicked %v)", tt.name, ours, theirs, panicked)
		}
		var listed []*pdu.Event
		for _, aid := range ev.AuthEvents {
			for _, known := range r.log {
				if known.ID == aid {
					listed = append(listed, known)
				}
			}
		}
		selected, ours := SelectAuthEventsIn("12", ev, listed, r.create)
		if ours == nil {
			ours = Check("12", ev, selected)
		}
		panicked, theirs = authorize(id.RoomV12, toMautrix(t, ev), nil, r.mautrixEvents(t))
		if panicked || (ours == nil) != (theirs == nil) {
			t.Errorf("Check(v12 %s, auth_events) = %v, mautrix %v (panicked %v)", tt.name, ours, theirs, panicked)
		}
	}
	for _, content := range []string{
		`{"room_version":"12"}`,
		`{"room_version":"12","additional_creators":["@bob:example.org"]}`,
		`{"room_version":"12","additional_creators":"@bob:example.org"}`,
		`{"room_version":"12","additional_creators":[1]}`,
		`{"room_version":"12","additional_creators":["bob"]}`,
	} {
		ev, err := pdu.Build(pdu.Proto{Sender: alice, Type: "m.room.create", StateKey: new(string),
			Content: []byte(content), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1}, "12", testKey("example.org"))
		if err != nil {
			t.Fatal(err)
		}
		ours := Check("12", ev, nil)
		theirs := eventauth.Authorize(id.RoomV12, toMautrix(t, ev), nil, nil, mautrixKeys)
		if (ours == nil) != (theirs == nil) {
			t.Errorf("Check(v12 create %s) = %v, mautrix %v", content, ours, theirs)
		}
	}
}
