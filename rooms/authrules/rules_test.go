package authrules

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

func TestCheckCreate(t *testing.T) {
	tests := []struct {
		name, version, sender, roomID, content string
		prev                                   bool
		stateKey                               *string
		allow                                  bool
	}{
		{"v11 without creator", "11", alice, "!r:example.org", `{"room_version":"11"}`, false, new(string), true},
		{"v10 with creator", "10", alice, "!r:example.org", `{"creator":"@alice:example.org","room_version":"10"}`, false, new(string), true},
		{"v10 without creator", "10", alice, "!r:example.org", `{"room_version":"10"}`, false, new(string), false},
		{"with prev_events", "11", alice, "!r:example.org", `{"room_version":"11"}`, true, new(string), false},
		{"room ID on another server", "11", alice, "!r:other.org", `{"room_version":"11"}`, false, new(string), false},
		{"room_version missing", "11", alice, "!r:example.org", `{}`, false, new(string), false},
		{"room_version mismatch", "11", alice, "!r:example.org", `{"room_version":"10"}`, false, new(string), false},
		{"room_version not a string", "11", alice, "!r:example.org", `{"room_version":11}`, false, new(string), false},
		{"not a state event", "11", alice, "!r:example.org", `{"room_version":"11"}`, false, nil, false},
		{"non-empty state key", "11", alice, "!r:example.org", `{"room_version":"11"}`, false, strPtr("x"), false},
	}
	for _, tt := range tests {
		p := pdu.Proto{RoomID: tt.roomID, Sender: tt.sender, Type: "m.room.create", StateKey: tt.stateKey,
			Content: json.RawMessage(tt.content), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1}
		if tt.prev {
			p.PrevEvents = []string{"$" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
		}
		ev, err := pdu.Build(p, tt.version, testKey("example.org"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(tt.version, ev, nil); (err == nil) != tt.allow {
			t.Errorf("Check(create %s) = %v, want allowed %v", tt.name, err, tt.allow)
		}
	}
}

func strPtr(s string) *string { return &s }

// TestCreatorByVersion: v10 takes the creator from content.creator, v11
// from the sender; it matters for the first join and for default levels.
func TestCreatorByVersion(t *testing.T) {
	for _, tt := range []struct {
		version, content string
		bobIsCreator     bool
	}{
		{"10", `{"creator":"@bob:example.org","room_version":"10"}`, true},
		{"11", `{"creator":"@bob:example.org","room_version":"11"}`, false},
	} {
		r := &room{t: t, version: tt.version, id: "!c:example.org", state: map[StateKey]*pdu.Event{}}
		r.create = r.send(alice, "m.room.create", "", tt.content)
		first := r.build(r.proto(bob, "m.room.member", strPtr(bob), join))
		if err := Check(tt.version, first, r.authFor(first)); (err == nil) != tt.bobIsCreator {
			t.Errorf("Check(v%s first join by bob) = %v, want allowed %v", tt.version, err, tt.bobIsCreator)
		}
		if tt.bobIsCreator {
			r.apply(first)
			name := r.build(r.proto(bob, "m.room.name", new(string), `{"name":"x"}`))
			if err := Check(tt.version, name, r.authFor(name)); err != nil {
				t.Errorf("Check(v10 creator bob sets name without power levels) = %v, want nil", err)
			}
		}
	}
}

func TestCheckAuthMapProblems(t *testing.T) {
	r := newRoom(t, "11")
	ev := r.build(r.proto(bob, "m.room.message", nil, `{"body":"x"}`))
	auth := r.authFor(ev)

	noCreate := map[StateKey]*pdu.Event{}
	for k, v := range auth {
		if k.Type != "m.room.create" {
			noCreate[k] = v
		}
	}
	other := newRoom(t, "11")
	other.id = "!other:example.org"
	foreign := other.build(other.proto(alice, "m.room.power_levels", new(string), `{}`))
	wrongRoom := map[StateKey]*pdu.Event{}
	for k, v := range auth {
		wrongRoom[k] = v
	}
	wrongRoom[StateKey{"m.room.power_levels", ""}] = foreign
	mislabelled := map[StateKey]*pdu.Event{}
	for k, v := range auth {
		mislabelled[k] = v
	}
	mislabelled[StateKey{"m.room.member", bob}] = r.state[StateKey{"m.room.member", mod}]

	for name, m := range map[string]map[StateKey]*pdu.Event{"no create": noCreate, "wrong room": wrongRoom, "mislabelled": mislabelled} {
		if err := Check("11", ev, m); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(message with %s auth) = %v, want ErrNotAllowed", name, err)
		}
	}
	for _, v := range []string{"9", "12"} {
		if err := Check(v, ev, auth); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(room version %s) = %v, want ErrNotAllowed", v, err)
		}
	}
	if err := Check("11", nil, auth); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Check(nil event) = %v, want ErrNotAllowed", err)
	}
	// Entries Needed does not name are ignored, so current state works as a map.
	all := map[StateKey]*pdu.Event{}
	for k, v := range r.state {
		all[k] = v
	}
	if err := Check("11", ev, all); err != nil {
		t.Errorf("Check(message against whole state) = %v, want nil", err)
	}
}

func TestNeeded(t *testing.T) {
	base := []StateKey{{"m.room.create", ""}, {"m.room.power_levels", ""}, {"m.room.member", bob}}
	with := func(extra ...StateKey) []StateKey { return append(append([]StateKey{}, base...), extra...) }
	tests := []struct {
		name, typ string
		stateKey  *string
		content   string
		want      []StateKey
	}{
		{"create", "m.room.create", strPtr(""), `{}`, nil},
		{"message", "m.room.message", nil, `{}`, base},
		{"state", "m.room.name", strPtr(""), `{}`, base},
		{"self join", "m.room.member", strPtr(bob), join, with(StateKey{"m.room.join_rules", ""})},
		{"invite", "m.room.member", strPtr(carol), invite, with(StateKey{"m.room.member", carol}, StateKey{"m.room.join_rules", ""})},
		{"knock", "m.room.member", strPtr(bob), knock, with(StateKey{"m.room.join_rules", ""})},
		{"leave", "m.room.member", strPtr(carol), leave, with(StateKey{"m.room.member", carol})},
		{"ban", "m.room.member", strPtr(carol), ban, with(StateKey{"m.room.member", carol})},
		{"3pid invite", "m.room.member", strPtr(carol), `{"membership":"invite","third_party_invite":{"signed":{"token":"tok"}}}`,
			with(StateKey{"m.room.member", carol}, StateKey{"m.room.join_rules", ""}, StateKey{"m.room.third_party_invite", "tok"})},
		{"restricted join", "m.room.member", strPtr(bob), `{"membership":"join","join_authorised_via_users_server":"@mod:example.org"}`,
			with(StateKey{"m.room.join_rules", ""}, StateKey{"m.room.member", mod})},
		{"authoriser on a leave", "m.room.member", strPtr(bob), `{"membership":"leave","join_authorised_via_users_server":"@mod:example.org"}`, base},
	}
	for _, tt := range tests {
		if got := Needed(tt.typ, tt.stateKey, bob, []byte(tt.content)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Needed(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSelectAuthEvents(t *testing.T) {
	r := newRoom(t, "11")
	ev := r.build(r.proto(bob, "m.room.message", nil, `{"body":"x"}`))
	var listed []*pdu.Event
	for _, id := range ev.AuthEvents {
		for _, s := range r.state {
			if s.ID == id {
				listed = append(listed, s)
			}
		}
	}
	got, err := SelectAuthEvents(ev, listed)
	if err != nil || len(got) != 3 {
		t.Fatalf("SelectAuthEvents(valid) = %v, %v, want 3 events", got, err)
	}
	if err := Check("11", ev, got); err != nil {
		t.Errorf("Check(with selected auth events) = %v, want nil", err)
	}
	joinRules := r.state[StateKey{"m.room.join_rules", ""}]
	p := r.proto(bob, "m.room.message", nil, `{"body":"x"}`)
	p.AuthEvents = append(p.AuthEvents, joinRules.ID)
	extra := r.build(p)
	p.AuthEvents = append(p.AuthEvents, ev.ID)
	withMessage := r.build(p)
	dupList := append(append([]*pdu.Event{}, listed...), listed[0])
	tests := []struct {
		name   string
		ev     *pdu.Event
		events []*pdu.Event
	}{
		{"duplicate", ev, dupList},
		{"not selected", extra, append(append([]*pdu.Event{}, listed...), joinRules)},
		{"not listed", ev, append(append([]*pdu.Event{}, listed...), joinRules)},
		{"non-state", withMessage, append(append([]*pdu.Event{}, listed...), ev)},
		{"missing", ev, append(append([]*pdu.Event{}, listed...), nil)},
	}
	for _, tt := range tests {
		if got, err := SelectAuthEvents(tt.ev, tt.events); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("SelectAuthEvents(%s) = %v, %v, want ErrNotAllowed", tt.name, got, err)
		}
	}
}

func TestThirdPartyInvite(t *testing.T) {
	idKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := base64.RawStdEncoding.EncodeToString(idKey.Public().(ed25519.PublicKey))
	otherPub := base64.RawStdEncoding.EncodeToString(testKey("x").Public())
	sign := func(mxid, token string, key ed25519.PrivateKey) string {
		msg := `{"mxid":"` + mxid + `","token":"` + token + `"}`
		sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(key, []byte(msg)))
		return `{"membership":"invite","third_party_invite":{"display_name":"c...","signed":{"mxid":"` + mxid +
			`","signatures":{"id.example":{"ed25519:0":"` + sig + `"}},"token":"` + token + `"}}}`
	}
	tpi := func(sender, keys string) func(r *room) {
		return func(r *room) { r.send(sender, "m.room.third_party_invite", "tok", `{"display_name":"c...",`+keys+`}`) }
	}
	single := `"public_key":"` + pub + `"`
	list := `"public_key":"` + otherPub + `","public_keys":[{"public_key":"` + otherPub + `"},{"public_key":"` + pub + `"}]`
	tests := []scenario{
		{name: "valid, public_key", setup: tpi(bob, single), content: sign(carol, "tok", idKey), allow: true},
		{name: "valid, public_keys", setup: tpi(bob, list), content: sign(carol, "tok", idKey), allow: true},
		{name: "signed by another key", setup: tpi(bob, single), content: sign(carol, "tok", testKey("y").Private)},
		{name: "mxid is someone else", setup: tpi(bob, single), content: sign(dave, "tok", idKey)},
		{name: "unknown token", setup: tpi(bob, single), content: sign(carol, "nope", idKey)},
		{name: "invite made by another user", setup: tpi(mod, single), content: sign(carol, "tok", idKey)},
		{name: "target banned", setup: steps(tpi(bob, single), member(mod, carol, "ban")), content: sign(carol, "tok", idKey)},
		{name: "no signed block", setup: tpi(bob, single), content: `{"membership":"invite","third_party_invite":{"display_name":"c"}}`},
		{name: "signed without token", setup: tpi(bob, single), content: `{"membership":"invite","third_party_invite":{"signed":{"mxid":"@carol:example.org"}}}`},
	}
	for _, v := range []string{"10", "11"} {
		for _, s := range tests {
			s.sender, s.typ, s.stateKey = bob, "m.room.member", carol
			r := newRoom(t, v)
			ev := s.prepare(r)
			if err := Check(v, ev, r.authFor(ev)); (err == nil) != s.allow {
				t.Errorf("Check(v%s 3pid invite %s) = %v, want allowed %v", v, s.name, err, s.allow)
			}
		}
	}
}
