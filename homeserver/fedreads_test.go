package homeserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"image"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

// unknownEvent is a well-formed event ID no server holds.
var unknownEvent = "$" + strings.Repeat("A", 43)

// fedDo makes a signed federation request from server from to server to
// and returns the status and the JSON body.
func fedDo(t *testing.T, from *hstest.Server, to, method string, path federation.URLPath, q url.Values, body any) (int, gjson.Result) {
	t.Helper()
	raw, resp, err := from.Srv.Fed.Client.Client.MakeFullRequest(context.Background(), federation.RequestParams{
		ServerName: to, Method: method, Path: path, Query: q, Authenticate: true, RequestJSON: body})
	if resp == nil {
		t.Fatalf("%s %v: %v", method, path, err)
	}
	return resp.StatusCode, gjson.ParseBytes(raw)
}

// joinFrom stores a join of userID (a user of another server) in room on
// srv, built and signed as that server would, and returns its event.
func joinFrom(t *testing.T, srv *hstest.Server, room, userID string) *pdu.Event {
	t.Helper()
	r := newRemote(t, srv.Srv.Rooms, room)
	seed := sha256.Sum256([]byte(pdu.Domain(userID)))
	r.key = &pdu.SigningKey{ServerName: pdu.Domain(userID), KeyID: "ed25519:t1", Private: ed25519.NewKeyFromSeed(seed[:])}
	ev, before := r.build(userID, "m.room.member", strp(userID), map[string]any{"membership": "join"}, r.extremities()...)
	r.persist(ev, rooms.Accepted, before)
	return ev
}

// TestFederationRoomReads: B reads A's room through event, state,
// state_ids, event_auth, backfill and get_missing_events. Before any user
// of B is in the room every read is 403 M_FORBIDDEN; after bob of B joins,
// the reads answer with the spec's shapes, an event from before the join
// (history visibility "joined") comes redacted, an unknown event is 404,
// and once the room's ACL denies B every read is 403 again.
func TestFederationRoomReads(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11",
				"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
			early := alice.Send(room, "e1", "before bob")
			esc := room
			type read struct {
				name, method string
				path         federation.URLPath
				q            url.Values
				body         any
			}
			reads := func(ev string) []read {
				return []read{
					{"event", "GET", federation.URLPath{"v1", "event", ev}, nil, nil},
					{"state_ids", "GET", federation.URLPath{"v1", "state_ids", esc}, url.Values{"event_id": {ev}}, nil},
					{"state", "GET", federation.URLPath{"v1", "state", esc}, url.Values{"event_id": {ev}}, nil},
					{"event_auth", "GET", federation.URLPath{"v1", "event_auth", esc, ev}, nil, nil},
					{"backfill", "GET", federation.URLPath{"v1", "backfill", esc}, url.Values{"v": {ev}, "limit": {"5"}}, nil},
					{"get_missing_events", "POST", federation.URLPath{"v1", "get_missing_events", esc}, nil,
						map[string]any{"earliest_events": []string{}, "latest_events": []string{ev}, "limit": 5}},
				}
			}
			for _, rd := range reads(early) {
				if code, body := fedDo(t, b, a.FedName, rd.method, rd.path, rd.q, rd.body); code != http.StatusForbidden || body.Get("errcode").String() != "M_FORBIDDEN" {
					t.Errorf("%s with no user of B in the room = %d %s, want 403 M_FORBIDDEN", rd.name, code, body.Raw)
				}
			}

			bob := "@bob:" + b.FedName
			join := joinFrom(t, a, room, bob)
			late := alice.Send(room, "e2", "after bob")

			code, body := fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "event", late}, nil, nil)
			if code != 200 || body.Get("origin").String() != a.FedName || body.Get("pdus.#").Int() != 1 ||
				body.Get("pdus.0.content.body").String() != "after bob" || body.Get("origin_server_ts").Int() == 0 {
				t.Errorf("event after bob's join = %d %s, want 200 with its PDU", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "event", early}, nil, nil)
			if code != 200 || body.Get("pdus.0.content").Raw != "{}" || !body.Get("pdus.0.signatures").Exists() {
				t.Errorf("event from before bob's join = %d %s, want 200 with its content redacted", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "event", unknownEvent}, nil, nil)
			if code != 404 || body.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("unknown event = %d %s, want 404 M_NOT_FOUND", code, body.Raw)
			}

			// state_ids at late: the state before it holds bob's join.
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "state_ids", room}, url.Values{"event_id": {late}}, nil)
			var ids, chain []string
			for _, v := range body.Get("pdu_ids").Array() {
				ids = append(ids, v.String())
			}
			for _, v := range body.Get("auth_chain_ids").Array() {
				chain = append(chain, v.String())
			}
			if code != 200 || !slices.Contains(ids, join.ID) || len(chain) == 0 {
				t.Errorf("state_ids = %d %s, want 200 with bob's join %s and an auth chain", code, body.Raw, join.ID)
			}
			// The auth chain holds what the state's auth_events reach: the
			// create event, not bob's join, which authorises nothing.
			if slices.Contains(chain, join.ID) || !slices.Contains(chain, alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state", nil).Get(`#(type=="m.room.create").event_id`).String()) {
				t.Errorf("state_ids auth_chain_ids = %v, want the create event and not bob's join %s", chain, join.ID)
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "state", room}, url.Values{"event_id": {late}}, nil)
			if code != 200 || body.Get("pdus.#").Int() != int64(len(ids)) || body.Get("auth_chain.#").Int() != int64(len(chain)) ||
				!body.Get(`pdus.#(type=="m.room.create")`).Exists() {
				t.Errorf("state = %d (%d pdus, %d auth), want 200 with %d and %d", code, body.Get("pdus.#").Int(), body.Get("auth_chain.#").Int(), len(ids), len(chain))
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "event_auth", room, late}, nil, nil)
			if code != 200 || !body.Get(`auth_chain.#(type=="m.room.create")`).Exists() || !body.Get(`auth_chain.#(type=="m.room.power_levels")`).Exists() {
				t.Errorf("event_auth = %d %s, want 200 with the create and power levels events", code, body.Raw)
			}

			// backfill from late: late, then bob's join, then the early
			// message (redacted), deepest first.
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "backfill", room}, url.Values{"v": {late}, "limit": {"3"}}, nil)
			var depths []int64
			for _, p := range body.Get("pdus").Array() {
				depths = append(depths, p.Get("depth").Int())
			}
			if code != 200 || len(depths) != 3 || body.Get("pdus.0.content.body").String() != "after bob" ||
				body.Get("pdus.1.state_key").String() != bob || body.Get("pdus.2.content").Raw != "{}" ||
				!slices.IsSortedFunc(depths, func(x, y int64) int { return int(y - x) }) {
				t.Errorf("backfill = %d %s, want late, bob's join, the early message redacted", code, body.Raw)
			}
			// get_missing_events from late back to the early message: bob's
			// join only, oldest first.
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "get_missing_events", room}, nil,
				map[string]any{"earliest_events": []string{early}, "latest_events": []string{late}, "limit": 10})
			if code != 200 || body.Get("events.#").Int() != 1 || body.Get("events.0.state_key").String() != bob {
				t.Errorf("get_missing_events = %d %s, want bob's join only", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "get_missing_events", room}, nil,
				map[string]any{"latest_events": []string{late}, "limit": 3})
			depths = depths[:0]
			for _, p := range body.Get("events").Array() {
				depths = append(depths, p.Get("depth").Int())
			}
			if code != 200 || len(depths) != 3 || !slices.IsSorted(depths) {
				t.Errorf("get_missing_events without earliest = %d %s, want 3 events oldest first", code, body.Raw)
			}

			// The room's ACL denies B: every read is refused.
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.server_acl/", map[string]any{
				"allow": []string{"*"}, "deny": []string{"127.0.0.3"}, "allow_ip_literals": true})
			for _, rd := range reads(late) {
				if code, body := fedDo(t, b, a.FedName, rd.method, rd.path, rd.q, rd.body); code != http.StatusForbidden || body.Get("errcode").String() != "M_FORBIDDEN" {
					t.Errorf("%s from a server the ACL denies = %d %s, want 403 M_FORBIDDEN", rd.name, code, body.Raw)
				}
			}
		})
	}
}

// TestFederationRoomReadsBadInput: malformed requests get 400 with the
// spec's error codes and change nothing.
func TestFederationRoomReadsBadInput(t *testing.T) {
	a, b := startPair(t, hstest.Store{Name: "sqlite"})
	alice := a.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"room_version": "11"})
	for _, c := range []struct {
		name, method string
		path         federation.URLPath
		q            url.Values
		body         any
		want         string
	}{
		{"state_ids without event_id", "GET", federation.URLPath{"v1", "state_ids", room}, nil, nil, "M_MISSING_PARAM"},
		{"state with a bad event_id", "GET", federation.URLPath{"v1", "state", room}, url.Values{"event_id": {"nope"}}, nil, "M_INVALID_PARAM"},
		{"backfill without v", "GET", federation.URLPath{"v1", "backfill", room}, url.Values{"limit": {"3"}}, nil, "M_MISSING_PARAM"},
		{"backfill with a bad limit", "GET", federation.URLPath{"v1", "backfill", room}, url.Values{"v": {"$abc"}, "limit": {"x"}}, nil, "M_INVALID_PARAM"},
		{"state_ids of a bad room ID", "GET", federation.URLPath{"v1", "state_ids", "room"}, url.Values{"event_id": {"$abc"}}, nil, "M_INVALID_PARAM"},
		{"get_missing_events without latest", "POST", federation.URLPath{"v1", "get_missing_events", room}, nil, map[string]any{"limit": 3}, "M_BAD_JSON"},
		{"get_missing_events with a bad latest", "POST", federation.URLPath{"v1", "get_missing_events", room}, nil, map[string]any{"latest_events": "x"}, "M_BAD_JSON"},
	} {
		code, body := fedDo(t, b, a.FedName, c.method, c.path, c.q, c.body)
		if code != 400 || body.Get("errcode").String() != c.want {
			t.Errorf("%s = %d %s, want 400 %s", c.name, code, body.Raw, c.want)
		}
	}
	code, body := fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "state_ids", "!nosuch:" + a.FedName}, url.Values{"event_id": {unknownEvent}}, nil)
	if code != 404 || body.Get("errcode").String() != "M_NOT_FOUND" {
		t.Errorf("state_ids of an unknown room = %d %s, want 404 M_NOT_FOUND", code, body.Raw)
	}
}

// TestFederationQueries: B asks A about alice and her room through
// query/profile, query/directory, user/devices, user/keys/query,
// user/keys/claim and publicRooms, and gets the spec's shapes; questions
// about users and aliases A does not host are refused.
func TestFederationQueries(t *testing.T) {
	const alg = "signed_curve25519"
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice A"})
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
				"device_keys":   apiDeviceKeys(alice, "1"),
				"one_time_keys": map[string]any{alg + ":AAAAAQ": apiSignedKey(alice, "otk-1", false)},
			})
			alias := "#lobby:" + a.FedName
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "lobby", "name": "Lobby", "visibility": "public"})

			for _, c := range []struct {
				name   string
				q      url.Values
				status int
				want   string // gjson path that must hold, or errcode
			}{
				{"whole profile", url.Values{"user_id": {alice.UserID}}, 200, `displayname=="Alice A"`},
				{"one field", url.Values{"user_id": {alice.UserID}, "field": {"displayname"}}, 200, `displayname=="Alice A"`},
				{"unknown user", url.Values{"user_id": {"@nobody:" + a.FedName}}, 404, "M_NOT_FOUND"},
				{"user of another server", url.Values{"user_id": {"@bob:" + b.FedName}}, 400, "M_INVALID_PARAM"},
				{"no user_id", nil, 400, "M_MISSING_PARAM"},
			} {
				code, body := fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "query", "profile"}, c.q, nil)
				ok := code == c.status
				if c.status == 200 {
					ok = ok && gjson.Get("["+body.Raw+"]", "#("+c.want+")").Exists()
				} else {
					ok = ok && body.Get("errcode").String() == c.want
				}
				if !ok {
					t.Errorf("query/profile %s = %d %s, want %d %s", c.name, code, body.Raw, c.status, c.want)
				}
			}

			code, body := fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "query", "directory"}, url.Values{"room_alias": {alias}}, nil)
			if code != 200 || body.Get("room_id").String() != room || body.Get("servers.0").String() != a.FedName {
				t.Errorf("query/directory = %d %s, want %s on %s", code, body.Raw, room, a.FedName)
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "query", "directory"}, url.Values{"room_alias": {"#nope:" + a.FedName}}, nil)
			if code != 404 || body.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("query/directory of an unknown alias = %d %s, want 404 M_NOT_FOUND", code, body.Raw)
			}

			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "user", "devices", alice.UserID}, nil, nil)
			dev := body.Get(`devices.#(device_id==` + alice.DeviceID + `)`)
			if code != 200 || body.Get("user_id").String() != alice.UserID || !body.Get("stream_id").Exists() ||
				dev.Get(apiPath("keys", "keys", "curve25519:"+alice.DeviceID)).String() != "curve-1" {
				t.Errorf("user/devices = %d %s, want alice's device with its keys", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "user", "devices", "@bob:" + b.FedName}, nil, nil)
			if code != 400 || body.Get("errcode").String() != "M_INVALID_PARAM" {
				t.Errorf("user/devices of another server's user = %d %s, want 400 M_INVALID_PARAM", code, body.Raw)
			}

			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "user", "keys", "query"}, nil,
				map[string]any{"device_keys": map[string]any{alice.UserID: []string{}, "@bob:" + b.FedName: []string{}}})
			if code != 200 || body.Get(apiPath("device_keys", alice.UserID, alice.DeviceID, "keys", "ed25519:"+alice.DeviceID)).String() != "ed-1" ||
				body.Get(apiPath("device_keys", "@bob:"+b.FedName)).Exists() {
				t.Errorf("user/keys/query = %d %s, want alice's keys only", code, body.Raw)
			}
			claim := map[string]any{"one_time_keys": map[string]any{alice.UserID: map[string]string{alice.DeviceID: alg}}}
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "user", "keys", "claim"}, nil, claim)
			if code != 200 || body.Get(apiPath("one_time_keys", alice.UserID, alice.DeviceID, alg+":AAAAAQ", "key")).String() != "otk-1" {
				t.Errorf("user/keys/claim = %d %s, want otk-1", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "user", "keys", "claim"}, nil, claim)
			if code != 200 || body.Get(apiPath("one_time_keys", alice.UserID, alice.DeviceID)).Exists() {
				t.Errorf("user/keys/claim again = %d %s, want no key left", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "user", "keys", "query"}, nil, map[string]any{"device_keys": "x"})
			if code != 400 || body.Get("errcode").String() != "M_BAD_JSON" {
				t.Errorf("user/keys/query with a bad body = %d %s, want 400 M_BAD_JSON", code, body.Raw)
			}

			code, body = fedDo(t, b, a.FedName, "GET", federation.URLPath{"v1", "publicRooms"}, url.Values{"limit": {"10"}}, nil)
			if code != 200 || body.Get(`chunk.#(room_id==`+room+`).name`).String() != "Lobby" || !body.Get("total_room_count_estimate").Exists() {
				t.Errorf("GET publicRooms = %d %s, want the lobby", code, body.Raw)
			}
			code, body = fedDo(t, b, a.FedName, "POST", federation.URLPath{"v1", "publicRooms"}, nil,
				map[string]any{"limit": 10, "filter": map[string]any{"generic_search_term": "nothing like it"}})
			if code != 200 || body.Get("chunk.#").Int() != 0 {
				t.Errorf("POST publicRooms with a filter matching nothing = %d %s, want an empty chunk", code, body.Raw)
			}
		})
	}
}

// TestFederationRemoteUsersInClientAPI: alice on A reads bob of B through
// A's client API: his profile (whole and one field, then cached), his
// device keys and a one-time key. A user of a server that cannot be
// reached gets 502 for the profile and lands in failures for keys.
func TestFederationRemoteUsersInClientAPI(t *testing.T) {
	const alg = "signed_curve25519"
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice, bob := a.Register(t, "alice"), b.Register(t, "bob")
			bob.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID)+"/displayname", map[string]any{"displayname": "Bob B"})
			bob.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
				"device_keys":   apiDeviceKeys(bob, "b"),
				"one_time_keys": map[string]any{alg + ":AAAAAQ": apiSignedKey(bob, "otk-b", false)},
			})
			down := "@carol:127.0.0.4:1" // nothing listens there

			p := alice.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID), nil)
			if got := p.Get("displayname").String(); got != "Bob B" {
				t.Errorf("bob's profile on A = %s, want displayname Bob B", p.Raw)
			}
			if got := alice.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID)+"/displayname", nil).Get("displayname").String(); got != "Bob B" {
				t.Errorf("bob's displayname on A = %q, want Bob B", got)
			}
			// Cached: a change on B is not seen at once on A.
			bob.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID)+"/displayname", map[string]any{"displayname": "Bob 2"})
			if got := alice.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID), nil).Get("displayname").String(); got != "Bob B" {
				t.Errorf("bob's profile on A again = %q, want the cached Bob B", got)
			}
			code, body := alice.Do("GET", "/_matrix/client/v3/profile/"+hstest.Esc("@nobody:"+b.FedName), nil)
			if code != 404 || body.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("unknown remote user's profile = %d %s, want 404 M_NOT_FOUND", code, body.Raw)
			}
			code, body = alice.Do("GET", "/_matrix/client/v3/profile/"+hstest.Esc(down), nil)
			if code != 502 {
				t.Errorf("profile of a user on a server that is down = %d %s, want 502", code, body.Raw)
			}

			q := alice.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"timeout": 5000,
				"device_keys": map[string]any{bob.UserID: []string{}, down: []string{}}})
			if got := q.Get(apiPath("device_keys", bob.UserID, bob.DeviceID, "keys", "curve25519:"+bob.DeviceID)).String(); got != "curve-b" {
				t.Errorf("keys/query for bob on A = %s, want his curve25519 key", q.Raw)
			}
			if !q.Get(apiPath("failures", "127.0.0.4:1")).Exists() || q.Get(apiPath("failures", b.FedName)).Exists() {
				t.Errorf("keys/query failures = %s, want only 127.0.0.4:1", q.Get("failures").Raw)
			}
			c := alice.MustDo("POST", "/_matrix/client/v3/keys/claim", map[string]any{
				"one_time_keys": map[string]any{bob.UserID: map[string]string{bob.DeviceID: alg}, down: map[string]string{"D": alg}}})
			if got := c.Get(apiPath("one_time_keys", bob.UserID, bob.DeviceID, alg+":AAAAAQ", "key")).String(); got != "otk-b" {
				t.Errorf("keys/claim for bob on A = %s, want otk-b", c.Raw)
			}
			if !c.Get(apiPath("failures", "127.0.0.4:1")).Exists() {
				t.Errorf("keys/claim failures = %s, want 127.0.0.4:1", c.Get("failures").Raw)
			}
		})
	}
}

// fedRaw makes a signed federation GET and returns the status, the
// Content-Type and the raw body.
func fedRaw(t *testing.T, from *hstest.Server, to string, path federation.URLPath, q url.Values) (int, string, []byte) {
	t.Helper()
	raw, resp, err := from.Srv.Fed.Client.Client.MakeFullRequest(context.Background(), federation.RequestParams{
		ServerName: to, Method: "GET", Path: path, Query: q, Authenticate: true, DontReadBody: true})
	if resp == nil {
		t.Fatalf("GET %v: %v", path, err)
	}
	if raw == nil {
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}

// multipartContent parses a federation media answer: the metadata part,
// then the content part's type and bytes.
func multipartContent(t *testing.T, contentType string, body []byte) (meta, partType string, data []byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, want multipart/mixed", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatalf("metadata part: %v", err)
	}
	m, _ := io.ReadAll(p)
	if p.Header.Get("Content-Type") != "application/json" {
		t.Errorf("metadata part type = %q, want application/json", p.Header.Get("Content-Type"))
	}
	p, err = mr.NextPart()
	if err != nil {
		t.Fatalf("content part: %v", err)
	}
	data, _ = io.ReadAll(p)
	return string(m), p.Header.Get("Content-Type"), data
}

// uploadAs uploads data with its Content-Type and returns the media ID.
func uploadAs(t *testing.T, c *hstest.Client, name, contentType string, data []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", c.Base+"/_matrix/media/v3/upload?filename="+name, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	mxc := gjson.GetBytes(raw, "content_uri").String()
	if resp.StatusCode != 200 || mxc == "" {
		t.Fatalf("upload = %d %s", resp.StatusCode, raw)
	}
	return mxc[strings.LastIndexByte(mxc, '/')+1:]
}

// clientRaw is an authenticated client GET returning the raw body.
func clientRaw(t *testing.T, c *hstest.Client, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.Base+path, nil)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestFederationMedia: B fetches A's media over federation (download and
// thumbnail, multipart/mixed); media posted in a room B has no user in is
// refused until a user of B joins; bob on B reads A's media through B's
// authenticated media routes, and B keeps it, so it still serves it once
// A is stopped. The legacy unauthenticated routes do not fetch.
func TestFederationMedia(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice, bob := a.Register(t, "alice"), b.Register(t, "bob")
			img := image.NewRGBA(image.Rect(0, 0, 64, 48))
			for i := range img.Pix {
				img.Pix[i] = byte(i)
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			pngBytes := buf.Bytes()
			id := uploadAs(t, alice, "pic.png", "image/png", pngBytes)

			code, ct, body := fedRaw(t, b, a.FedName, federation.URLPath{"v1", "media", "download", id}, nil)
			if code != 200 {
				t.Fatalf("federation download = %d %s", code, body)
			}
			meta, partType, data := multipartContent(t, ct, body)
			if meta != "{}" || partType != "image/png" || !bytes.Equal(data, pngBytes) {
				t.Errorf("federation download = meta %s, type %q, %d bytes; want {}, image/png, the %d bytes uploaded", meta, partType, len(data), len(pngBytes))
			}
			code, ct, body = fedRaw(t, b, a.FedName, federation.URLPath{"v1", "media", "thumbnail", id}, url.Values{"width": {"32"}, "height": {"32"}, "method": {"scale"}})
			if code != 200 {
				t.Fatalf("federation thumbnail = %d %s", code, body)
			}
			if _, partType, data = multipartContent(t, ct, body); !strings.HasPrefix(partType, "image/") || len(data) == 0 {
				t.Errorf("federation thumbnail part = %q, %d bytes; want an image", partType, len(data))
			}
			code, _, body = fedRaw(t, b, a.FedName, federation.URLPath{"v1", "media", "download", "nosuchmedia"}, nil)
			if code != 404 || gjson.GetBytes(body, "errcode").String() != "M_NOT_FOUND" {
				t.Errorf("federation download of unknown media = %d %s, want 404 M_NOT_FOUND", code, body)
			}

			// Media posted in a room without users of B stays there.
			room := alice.CreateRoom(map[string]any{"room_version": "11"})
			posted := alice.MustDo("POST", "/_matrix/media/v3/upload?filename=secret.bin", []byte("secret")).Get("content_uri").String()
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/img1", map[string]any{"msgtype": "m.file", "body": "s", "url": posted})
			postedID := posted[strings.LastIndexByte(posted, '/')+1:]
			if code, _, body = fedRaw(t, b, a.FedName, federation.URLPath{"v1", "media", "download", postedID}, nil); code != 404 {
				t.Errorf("federation download of media in a room without B = %d %s, want 404", code, body)
			}
			joinFrom(t, a, room, "@carol:"+b.FedName)
			if code, _, body = fedRaw(t, b, a.FedName, federation.URLPath{"v1", "media", "download", postedID}, nil); code != 200 {
				t.Errorf("federation download of media in a room with a user of B = %d %s, want 200", code, body)
			}

			// Client side on B.
			path := "/_matrix/client/v1/media/download/" + a.FedName + "/" + id
			if code, data := clientRaw(t, bob, path); code != 200 || !bytes.Equal(data, pngBytes) {
				t.Errorf("bob's download of A's media = %d, %d bytes; want 200 and the upload", code, len(data))
			}
			if code, data := clientRaw(t, bob, "/_matrix/client/v1/media/thumbnail/"+a.FedName+"/"+id+"?width=32&height=32&method=crop"); code != 200 || len(data) == 0 {
				t.Errorf("bob's thumbnail of A's media = %d %s, want 200", code, data)
			}
			if code, _ := clientRaw(t, b.Anon(t), "/_matrix/media/v3/download/"+a.FedName+"/"+id); code != 404 {
				t.Errorf("unauthenticated legacy download of remote media = %d, want 404", code)
			}
			if code, data := clientRaw(t, bob, "/_matrix/client/v1/media/download/"+a.FedName+"/nosuchmedia"); code != 404 {
				t.Errorf("bob's download of unknown remote media = %d %s, want 404", code, data)
			}
			if code, data := clientRaw(t, bob, "/_matrix/client/v1/media/download/127.0.0.4:1/someid"); code != 502 {
				t.Errorf("bob's download from a server that is down = %d %s, want 502", code, data)
			}
			a.Stop()
			if code, data := clientRaw(t, bob, path); code != 200 || !bytes.Equal(data, pngBytes) {
				t.Errorf("bob's download of A's media with A stopped = %d, %d bytes; want it served from B's copy", code, len(data))
			}
		})
	}
}
