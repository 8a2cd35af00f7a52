package authrules

import (
	"github.com/parley-im/parley/rooms/pdu"
)

// scenario is one auth decision: set up the room, build one event the way
// a server would, and expect it allowed or refused. The same table drives
// the unit tests and the cross-check against mautrix's eventauth.
type scenario struct {
	name                  string
	setup                 func(r *room)
	sender, typ, stateKey string
	content               string
	edit                  func(r *room, p *pdu.Proto) // optional tweak before signing
	cosign                []string                    // extra servers that sign the event
	allow                 bool
}

func pl(content string) func(r *room) {
	return func(r *room) { r.send(alice, "m.room.power_levels", "", content) }
}

func joinRule(rule string) func(r *room) {
	return func(r *room) { r.send(alice, "m.room.join_rules", "", `{"join_rule":"`+rule+`"}`) }
}

func steps(fns ...func(r *room)) func(r *room) {
	return func(r *room) {
		for _, fn := range fns {
			fn(r)
		}
	}
}

func member(sender, target, membership string) func(r *room) {
	return func(r *room) { r.send(sender, "m.room.member", target, `{"membership":"`+membership+`"}`) }
}

const join, invite, leave, ban, knock = `{"membership":"join"}`, `{"membership":"invite"}`, `{"membership":"leave"}`, `{"membership":"ban"}`, `{"membership":"knock"}`

// membershipScenarios covers every membership transition of rule 4.
func membershipScenarios() []scenario {
	const restrictedVia = `{"membership":"join","join_authorised_via_users_server":"@alice:example.org"}`
	return []scenario{
		{name: "join public room", sender: carol, typ: "m.room.member", stateKey: carol, content: join, allow: true},
		{name: "remote join public room", sender: dave, typ: "m.room.member", stateKey: dave, content: join, allow: true},
		{name: "join invite-only without invite", setup: joinRule("invite"), sender: carol, typ: "m.room.member", stateKey: carol, content: join},
		{name: "join invite-only with invite", setup: steps(joinRule("invite"), member(bob, carol, "invite")), sender: carol, typ: "m.room.member", stateKey: carol, content: join, allow: true},
		{name: "join invite-only when already joined", setup: joinRule("invite"), sender: bob, typ: "m.room.member", stateKey: bob, content: join, allow: true},
		{name: "join on behalf of someone else", sender: bob, typ: "m.room.member", stateKey: carol, content: join},
		{name: "join with unknown join rule", setup: joinRule("private"), sender: carol, typ: "m.room.member", stateKey: carol, content: join},
		{name: "join knock room with invite", setup: steps(joinRule("knock"), member(bob, carol, "invite")), sender: carol, typ: "m.room.member", stateKey: carol, content: join, allow: true},
		{name: "join knock room without invite", setup: joinRule("knock"), sender: carol, typ: "m.room.member", stateKey: carol, content: join},
		{name: "rejoin after ban", setup: member(mod, carol, "ban"), sender: carol, typ: "m.room.member", stateKey: carol, content: join},
		{name: "rejoin after leave", setup: member(bob, bob, "leave"), sender: bob, typ: "m.room.member", stateKey: bob, content: join, allow: true},
		{name: "restricted join without authoriser", setup: joinRule("restricted"), sender: carol, typ: "m.room.member", stateKey: carol, content: join},
		{name: "restricted join authorised by admin", setup: joinRule("restricted"), sender: carol, typ: "m.room.member", stateKey: carol, content: restrictedVia, allow: true},
		{name: "restricted join with invite", setup: steps(joinRule("restricted"), member(bob, carol, "invite")), sender: carol, typ: "m.room.member", stateKey: carol, content: join, allow: true},
		{name: "knock_restricted join authorised by admin", setup: joinRule("knock_restricted"), sender: carol, typ: "m.room.member", stateKey: carol, content: restrictedVia, allow: true},
		{name: "restricted join authorised by user who cannot invite", setup: steps(joinRule("restricted"), pl(`{"invite":50,"users":{"@alice:example.org":100,"@mod:example.org":50}}`)),
			sender: carol, typ: "m.room.member", stateKey: carol, content: `{"membership":"join","join_authorised_via_users_server":"@bob:example.org"}`},
		{name: "restricted join authorised by non-member", setup: joinRule("restricted"), sender: carol, typ: "m.room.member", stateKey: carol,
			content: `{"membership":"join","join_authorised_via_users_server":"@carol:example.org"}`},
		{name: "restricted join authorised by remote user, co-signed", setup: steps(member(dave, dave, "join"), joinRule("restricted")),
			sender: carol, typ: "m.room.member", stateKey: carol, content: `{"membership":"join","join_authorised_via_users_server":"@dave:other.org"}`, cosign: []string{"other.org"}, allow: true},
		{name: "restricted join authorised by remote user, not co-signed", setup: steps(member(dave, dave, "join"), joinRule("restricted")),
			sender: carol, typ: "m.room.member", stateKey: carol, content: `{"membership":"join","join_authorised_via_users_server":"@dave:other.org"}`},
		{name: "banned user cannot join restricted room", setup: steps(joinRule("restricted"), member(mod, carol, "ban")), sender: carol, typ: "m.room.member", stateKey: carol, content: restrictedVia},

		{name: "invite by member", sender: bob, typ: "m.room.member", stateKey: carol, content: invite, allow: true},
		{name: "invite without invite power", setup: pl(`{"invite":50,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "m.room.member", stateKey: carol, content: invite},
		{name: "invite with invite power", setup: pl(`{"invite":50,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: mod, typ: "m.room.member", stateKey: carol, content: invite, allow: true},
		{name: "invite by non-member", sender: carol, typ: "m.room.member", stateKey: dave, content: invite},
		{name: "invite of banned user", setup: member(mod, carol, "ban"), sender: mod, typ: "m.room.member", stateKey: carol, content: invite},
		{name: "invite of joined user", sender: mod, typ: "m.room.member", stateKey: bob, content: invite},
		{name: "re-invite of invited user", setup: member(bob, carol, "invite"), sender: mod, typ: "m.room.member", stateKey: carol, content: invite, allow: true},

		{name: "leave when joined", sender: bob, typ: "m.room.member", stateKey: bob, content: leave, allow: true},
		{name: "reject invite", setup: member(bob, carol, "invite"), sender: carol, typ: "m.room.member", stateKey: carol, content: leave, allow: true},
		{name: "leave when not in room", sender: carol, typ: "m.room.member", stateKey: carol, content: leave},
		{name: "leave when banned", setup: member(mod, carol, "ban"), sender: carol, typ: "m.room.member", stateKey: carol, content: leave},
		{name: "kick lower power", sender: mod, typ: "m.room.member", stateKey: bob, content: leave, allow: true},
		{name: "kick with power below kick level", sender: bob, typ: "m.room.member", stateKey: carol, content: leave},
		{name: "kick higher power", sender: mod, typ: "m.room.member", stateKey: alice, content: leave},
		{name: "kick equal power", setup: pl(`{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":50}}`), sender: mod, typ: "m.room.member", stateKey: bob, content: leave},
		{name: "kick by non-member", setup: member(mod, mod, "leave"), sender: mod, typ: "m.room.member", stateKey: bob, content: leave},
		{name: "kick at raised kick level", setup: pl(`{"kick":60,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: mod, typ: "m.room.member", stateKey: bob, content: leave},
		{name: "unban", setup: member(mod, carol, "ban"), sender: alice, typ: "m.room.member", stateKey: carol, content: leave, allow: true},
		{name: "unban below ban level", setup: steps(member(alice, carol, "ban"), pl(`{"ban":60,"users":{"@alice:example.org":100,"@mod:example.org":50}}`)), sender: mod, typ: "m.room.member", stateKey: carol, content: leave},

		{name: "ban lower power", sender: mod, typ: "m.room.member", stateKey: bob, content: ban, allow: true},
		{name: "ban user not in room", sender: mod, typ: "m.room.member", stateKey: dave, content: ban, allow: true},
		{name: "ban without ban power", sender: bob, typ: "m.room.member", stateKey: carol, content: ban},
		{name: "ban higher power", sender: mod, typ: "m.room.member", stateKey: alice, content: ban},
		{name: "ban by non-member", setup: member(mod, mod, "leave"), sender: mod, typ: "m.room.member", stateKey: carol, content: ban},

		{name: "knock on knock room", setup: joinRule("knock"), sender: carol, typ: "m.room.member", stateKey: carol, content: knock, allow: true},
		{name: "knock on knock_restricted room", setup: joinRule("knock_restricted"), sender: dave, typ: "m.room.member", stateKey: dave, content: knock, allow: true},
		{name: "knock on public room", sender: carol, typ: "m.room.member", stateKey: carol, content: knock},
		{name: "knock on invite room", setup: joinRule("invite"), sender: carol, typ: "m.room.member", stateKey: carol, content: knock},
		{name: "knock for someone else", setup: joinRule("knock"), sender: bob, typ: "m.room.member", stateKey: carol, content: knock},
		{name: "knock while joined", setup: joinRule("knock"), sender: bob, typ: "m.room.member", stateKey: bob, content: knock},
		{name: "knock while banned", setup: steps(joinRule("knock"), member(mod, carol, "ban")), sender: carol, typ: "m.room.member", stateKey: carol, content: knock},
		{name: "rescind knock", setup: steps(joinRule("knock"), member(carol, carol, "knock")), sender: carol, typ: "m.room.member", stateKey: carol, content: leave, allow: true},

		{name: "unknown membership", sender: bob, typ: "m.room.member", stateKey: bob, content: `{"membership":"wander"}`},
		{name: "membership missing", sender: bob, typ: "m.room.member", stateKey: bob, content: `{"displayname":"Bob"}`},
		{name: "member event without state key", sender: bob, typ: "m.room.member", stateKey: "-", content: join},
		{name: "creator's first join needs prev = create", setup: nil, sender: alice, typ: "m.room.member", stateKey: alice, content: join,
			edit: func(r *room, p *pdu.Proto) { p.PrevEvents, p.AuthEvents = []string{r.create.ID}, []string{r.create.ID} }, allow: true},
		{name: "first join by non-creator", sender: bob, typ: "m.room.member", stateKey: carol, content: join,
			edit: func(r *room, p *pdu.Proto) { p.PrevEvents = []string{r.create.ID} }},
	}
}

// eventScenarios covers rules 3 and 5 to 10 for non-member events.
func eventScenarios() []scenario {
	return []scenario{
		{name: "message by member", sender: bob, typ: "m.room.message", content: `{"body":"hi"}`, allow: true},
		{name: "message by non-member", sender: carol, typ: "m.room.message", content: `{"body":"hi"}`},
		{name: "message by invited user", setup: member(bob, carol, "invite"), sender: carol, typ: "m.room.message", content: `{"body":"hi"}`},
		{name: "message after leaving", setup: member(bob, bob, "leave"), sender: bob, typ: "m.room.message", content: `{"body":"hi"}`},
		{name: "message below events_default", setup: pl(`{"events_default":10,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "m.room.message", content: `{"body":"hi"}`},
		{name: "message below per-type level", setup: pl(`{"events":{"m.room.message":60},"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: mod, typ: "m.room.message", content: `{"body":"hi"}`},
		{name: "state below state_default", sender: bob, typ: "m.room.name", content: `{"name":"x"}`},
		{name: "state at state_default", sender: mod, typ: "m.room.name", content: `{"name":"x"}`, allow: true},
		{name: "state with per-type level lowered", setup: pl(`{"events":{"m.room.topic":0},"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "m.room.topic", content: `{"topic":"x"}`, allow: true},
		{name: "users_default grants state", setup: pl(`{"users_default":50,"users":{"@alice:example.org":100}}`), sender: bob, typ: "m.room.name", content: `{"name":"x"}`, allow: true},
		{name: "own @ state key", setup: pl(`{"state_default":0,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "org.example.state", stateKey: bob, content: `{}`, allow: true},
		{name: "other user's @ state key", setup: pl(`{"state_default":0,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "org.example.state", stateKey: carol, content: `{}`},
		{name: "admin cannot set another user's @ state key", sender: alice, typ: "org.example.state", stateKey: bob, content: `{}`},
		{name: "non-@ state key", sender: mod, typ: "org.example.state", stateKey: "x@y", content: `{}`, allow: true},
		{name: "redaction passes on event level", sender: bob, typ: "m.room.redaction", content: `{}`, allow: true},
		{name: "redaction below its event level", setup: pl(`{"events":{"m.room.redaction":50},"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "m.room.redaction", content: `{}`},
		{name: "third-party invite at invite level", sender: bob, typ: "m.room.third_party_invite", stateKey: "token", content: `{"display_name":"c","public_key":"x","key_validity_url":"https://id/"}`, allow: true},
		{name: "third-party invite below invite level", setup: pl(`{"invite":50,"users":{"@alice:example.org":100,"@mod:example.org":50}}`), sender: bob, typ: "m.room.third_party_invite", stateKey: "token", content: `{"display_name":"c"}`},
		{name: "m.federate false refuses remote join", setup: nil, sender: dave, typ: "m.room.member", stateKey: dave, content: join,
			edit: func(r *room, p *pdu.Proto) { federateOff(r, p) }},
		{name: "m.federate false allows local join", sender: carol, typ: "m.room.member", stateKey: carol, content: join,
			edit: func(r *room, p *pdu.Proto) { federateOff(r, p) }, allow: true},
	}
}

// federateOff swaps the room's create event for one with m.federate false
// (the rest of the room stays as built; only the auth map changes).
func federateOff(r *room, p *pdu.Proto) {
	content := `{"m.federate":false,"room_version":"11"}`
	if r.version == "10" {
		content = `{"creator":"@alice:example.org","m.federate":false,"room_version":"10"}`
	}
	cp := r.proto(alice, "m.room.create", new(string), content)
	cp.PrevEvents, cp.AuthEvents, cp.Depth = []string{}, []string{}, 1
	r.state[StateKey{"m.room.create", ""}] = r.build(cp)
}

// powerLevelScenarios covers rule 9 with mod (50) as the usual sender.
func powerLevelScenarios() []scenario {
	const users = `"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":50,"@bob:example.org":0}`
	base := pl(`{"state_default":50,` + users + `}`)
	plEvent := func(name, content string, allow bool) scenario {
		return scenario{name: name, setup: base, sender: mod, typ: "m.room.power_levels", content: content, allow: allow}
	}
	return []scenario{
		plEvent("unchanged", `{"state_default":50,`+users+`}`, true),
		plEvent("raise user to own level", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":50,"@bob:example.org":50}}`, true),
		plEvent("raise user above own level", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":50,"@bob:example.org":51}}`, false),
		plEvent("add new user at own level", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":50,"@bob:example.org":0,"@carol:example.org":50}}`, true),
		plEvent("demote higher user", `{"state_default":50,"users":{"@alice:example.org":0,"@mod:example.org":50,"@mod2:example.org":50,"@bob:example.org":0}}`, false),
		plEvent("demote equal user", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":0,"@bob:example.org":0}}`, false),
		plEvent("remove equal user", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":0}}`, false),
		plEvent("demote lower user", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":50,"@mod2:example.org":50}}`, true),
		plEvent("demote self", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":10,"@mod2:example.org":50,"@bob:example.org":0}}`, true),
		plEvent("promote self", `{"state_default":50,"users":{"@alice:example.org":100,"@mod:example.org":60,"@mod2:example.org":50,"@bob:example.org":0}}`, false),
		plEvent("lower ban level", `{"ban":40,"state_default":50,`+users+`}`, true),
		plEvent("raise kick level above own", `{"kick":60,"state_default":50,`+users+`}`, false),
		plEvent("set users_default to own level", `{"users_default":50,"state_default":50,`+users+`}`, true),
		plEvent("remove state_default (default 50)", `{`+users+`}`, true),
		plEvent("add event level at own", `{"events":{"m.room.name":50},"state_default":50,`+users+`}`, true),
		plEvent("add event level above own", `{"events":{"m.room.name":70},"state_default":50,`+users+`}`, false),
		plEvent("raise notifications above own", `{"notifications":{"room":100},"state_default":50,`+users+`}`, false),
		plEvent("lower notifications", `{"notifications":{"room":0},"state_default":50,`+users+`}`, true),
		plEvent("string level", `{"ban":"50","state_default":50,`+users+`}`, false),
		plEvent("string user level", `{"state_default":50,"users":{"@mod:example.org":"50"}}`, false),
		plEvent("string event level", `{"events":{"m.room.name":"50"},"state_default":50,`+users+`}`, false),
		plEvent("events not an object", `{"events":[],"state_default":50,`+users+`}`, false),
		plEvent("notifications not an object", `{"notifications":1,"state_default":50,`+users+`}`, false),
		plEvent("users not an object", `{"users":[]}`, false),
		plEvent("users key not a user ID", `{"state_default":50,"users":{"mod":50,"@mod:example.org":50}}`, false),
		{name: "change level above own", setup: pl(`{"state_default":50,"redact":70,` + users + `}`), sender: mod, typ: "m.room.power_levels",
			content: `{"state_default":50,"redact":40,` + users + `}`},
		{name: "remove event level above own", setup: pl(`{"events":{"m.room.name":70},` + users + `}`), sender: mod, typ: "m.room.power_levels",
			content: `{` + users + `}`},
		{name: "below state level for power levels", setup: pl(`{"events":{"m.room.power_levels":100},` + users + `}`), sender: mod, typ: "m.room.power_levels",
			content: `{"events":{"m.room.power_levels":100},` + users + `}`},
		{name: "admin raises anyone", setup: base, sender: alice, typ: "m.room.power_levels",
			content: `{"users":{"@alice:example.org":100,"@mod:example.org":99,"@bob:example.org":99}}`, allow: true},
	}
}

// allScenarios is every table above.
func allScenarios() []scenario {
	out := membershipScenarios()
	out = append(out, eventScenarios()...)
	return append(out, powerLevelScenarios()...)
}

// prepare runs s's setup on a fresh room and builds (and co-signs) the
// event under test.
func (s scenario) prepare(r *room) *pdu.Event {
	r.t.Helper()
	if s.setup != nil {
		s.setup(r)
	}
	p := r.proto(s.sender, s.typ, stateKeyFor(s.typ, s.stateKey), s.content)
	if s.edit != nil {
		s.edit(r, &p)
	}
	ev := r.build(p)
	for _, server := range s.cosign {
		var err error
		if ev, err = ev.AddSignature(r.version, testKey(server)); err != nil {
			r.t.Fatal(err)
		}
	}
	return ev
}
