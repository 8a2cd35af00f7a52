package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// maxJoinEvents bounds the state plus auth chain a send_join answer may
// carry: each event costs a signature check and a row.
const maxJoinEvents = 200_000

// Spans tells the outbound queue which servers are in a room this server
// just joined through another: their members came in the join's state, not
// as events of the room log the queue reads (*outbound.Queue).
type Spans interface {
	OpenRoomServers(ctx context.Context, roomID string, servers []string, pos int64) error
}

// JoinerConfig is what the joining side needs. Static after NewJoiner.
type JoinerConfig struct {
	ServerName string
	Key        *pdu.SigningKey
	Client     *federation.Client // signed (transport.Client.Client)
	Keys       checks.Keys
	Rooms      *rooms.Service
	Spans      Spans // nil: none told
	Log        *slog.Logger
	// Now is the clock for origin_server_ts; nil means time.Now.
	Now func() time.Time
}

// Joiner joins and leaves rooms through resident servers.
type Joiner struct {
	cfg JoinerConfig // static
}

// NewJoiner returns a Joiner.
func NewJoiner(cfg JoinerConfig) *Joiner {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Joiner{cfg: cfg}
}

// supportedVersions are the room versions this server can join.
var supportedVersions = []id.RoomVersion{"10", "11", "12"}

// ResolveAlias asks the alias's server for the room it names and the
// servers in it (federation query/directory).
func (j *Joiner) ResolveAlias(ctx context.Context, alias string) (string, []string, error) {
	resp, err := j.cfg.Client.QueryDirectory(ctx, id.RoomAlias(alias))
	if err != nil {
		return "", nil, remoteErr(err)
	}
	return resp.RoomID.String(), resp.Servers, nil
}

// Join joins user to roomID through the first of servers that lets it:
// make_join, sign, send_join, check the answer, store the room. content
// adds to the template's content (display name, avatar, reason). It
// returns the join's event ID.
func (j *Joiner) Join(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	var lastErr error = apierr.NotFound("No server to join " + roomID + " through")
	for _, srv := range dedupe(servers, j.cfg.ServerName) {
		evID, err := j.joinVia(ctx, srv, roomID, user, content)
		if err == nil {
			return evID, nil
		}
		j.cfg.Log.Info("remote join failed", "room", roomID, "via", srv, "err", err)
		lastErr = err
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code == "M_FORBIDDEN" {
			return "", err // the room said no; another server will too
		}
	}
	return "", lastErr
}

func (j *Joiner) joinVia(ctx context.Context, srv, roomID, user string, content map[string]any) (string, error) {
	mj, err := j.cfg.Client.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: id.RoomID(roomID), UserID: id.UserID(user), Via: srv, SupportedVersions: supportedVersions})
	if err != nil {
		return "", remoteErr(err)
	}
	version := string(mj.RoomVersion)
	if version == "" {
		version = "1"
	}
	if !pdu.Supported(version) {
		return "", apierr.New(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "This server cannot join rooms of version "+version)
	}
	ev, err := j.signTemplate(mj.Event, version, roomID, user, "join", content)
	if err != nil {
		return "", err
	}
	resp, err := j.cfg.Client.SendJoin(ctx, &federation.ReqSendJoin{RoomID: id.RoomID(roomID), EventID: id.EventID(ev.ID), Event: ev.Raw, Via: srv})
	if err != nil {
		return "", remoteErr(err)
	}
	rj, err := j.checkAnswer(ctx, version, roomID, ev, resp)
	if err != nil {
		return "", fmt.Errorf("%w: send_join answer of %s: %w", errBadAnswer, srv, err)
	}
	pos, err := j.cfg.Rooms.PersistJoined(ctx, *rj)
	if err != nil {
		return "", err
	}
	if j.cfg.Spans != nil {
		if err := j.cfg.Spans.OpenRoomServers(ctx, roomID, joinedServers(rj, j.cfg.ServerName), pos); err != nil {
			return "", err
		}
	}
	return ev.ID, nil
}

// errBadAnswer marks a resident server's answer that failed the checks.
var errBadAnswer = errors.New("bad answer")

// signTemplate checks a make_join or make_leave template (it must be user's
// membership in roomID) and builds the event from it, signed by us.
func (j *Joiner) signTemplate(raw json.RawMessage, version, roomID, user, membership string, extra map[string]any) (*pdu.Event, error) {
	var t rooms.Template
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("%w: template: %v", errBadAnswer, err)
	}
	if t.Type != "m.room.member" || t.Sender != user || t.StateKey != user || (t.RoomID != roomID && !(t.RoomID == "" && pdu.RoomIDFromCreate(version))) {
		return nil, fmt.Errorf("%w: the template is not %s's membership in %s", errBadAnswer, user, roomID)
	}
	c := map[string]any{}
	if len(t.Content) > 0 {
		if err := json.Unmarshal(t.Content, &c); err != nil || c == nil {
			return nil, fmt.Errorf("%w: template content is not an object", errBadAnswer)
		}
	}
	for k, v := range extra {
		c[k] = v
	}
	c["membership"] = membership
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return pdu.Build(pdu.Proto{RoomID: roomID, Sender: user, Type: t.Type, StateKey: &user, Content: body,
		PrevEvents: t.PrevEvents, AuthEvents: t.AuthEvents, Depth: t.Depth, OriginServerTS: j.cfg.Now().UnixMilli()}, version, j.cfg.Key)
}

// checkAnswer verifies a send_join answer: every state and auth chain
// event parses for the room's version (hash checked; a bad hash keeps the
// redacted copy, as the spec says), is in the room, carries valid
// signatures, and passes the auth rules against its own auth events; the
// create event is of the version make_join named; the join the resident
// returns is ours (its signature added at most). Events that fail are left
// out; a state without a create event, or a join the state does not allow,
// fails the whole answer.
func (j *Joiner) checkAnswer(ctx context.Context, version, roomID string, ours *pdu.Event, resp *federation.RespSendJoin) (*rooms.RemoteJoin, error) {
	if len(resp.State)+len(resp.AuthChain) > maxJoinEvents {
		return nil, fmt.Errorf("%d events, over the limit of %d", len(resp.State)+len(resp.AuthChain), maxJoinEvents)
	}
	join := ours
	if len(resp.Event) > 0 {
		ev, err := pdu.Parse(resp.Event, version)
		if err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		if ev.ID != ours.ID {
			return nil, fmt.Errorf("event is %s, not our join %s", ev.ID, ours.ID)
		}
		if err := checks.VerifySignatures(ctx, j.cfg.Keys, version, ev); err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		join = ev
	}
	all := map[string]*pdu.Event{}
	var stateIDs []string
	// Parsing and check 2 (one ed25519 verification per event) are most of
	// a big answer's cost and independent per event: both run on every core
	// (checks.ParseAll, checks.VerifyAll).
	raws := make([][]byte, 0, len(resp.State)+len(resp.AuthChain))
	for _, raw := range resp.State {
		raws = append(raws, raw)
	}
	for _, raw := range resp.AuthChain {
		raws = append(raws, raw)
	}
	parsed, perrs := checks.ParseAll(raws, version)
	var fresh []*pdu.Event
	for i, ev := range parsed {
		err := perrs[i]
		if errors.Is(err, pdu.ErrBadHash) && ev != nil {
			err = nil // stored as its redacted copy
		}
		if err != nil {
			continue // dropped, as /send drops it
		}
		if ev.RoomID != roomID {
			return nil, fmt.Errorf("event %s is in room %s", ev.ID, ev.RoomID)
		}
		if i < len(resp.State) {
			if ev.StateKey == nil {
				return nil, fmt.Errorf("state event %s has no state_key", ev.ID)
			}
			stateIDs = append(stateIDs, ev.ID)
		}
		if _, ok := all[ev.ID]; !ok {
			all[ev.ID] = ev
			fresh = append(fresh, ev)
		}
	}
	for i, err := range checks.VerifyAll(ctx, j.cfg.Keys, version, fresh) {
		if err != nil {
			j.cfg.Log.Info("remote join: event dropped", "event", fresh[i].ID, "err", err)
			delete(all, fresh[i].ID)
		}
	}
	var create *pdu.Event
	if pdu.RoomIDFromCreate(version) {
		create = all[pdu.CreateEventIDOf(roomID)]
	}
	for _, ev := range all {
		if ev.Type == "m.room.create" && ev.StateKey != nil && *ev.StateKey == "" {
			if create != nil && create.ID != ev.ID {
				return nil, errors.New("two create events")
			}
			create = ev
		}
	}
	if create == nil {
		return nil, errors.New("no valid create event")
	}
	if v := gjson.GetBytes(create.Content, "room_version"); v.Str != version && !(v.Type == gjson.Null && version == "1") {
		return nil, fmt.Errorf("the create event says room version %q, make_join said %q", v.Str, version)
	}
	// Auth each event against its own auth events, ancestors first.
	ok := map[string]bool{}
	visiting := map[string]bool{}
	var visit func(ev *pdu.Event) bool
	visit = func(ev *pdu.Event) bool {
		if done, seen := ok[ev.ID]; seen {
			return done
		}
		if visiting[ev.ID] {
			return false // a cycle
		}
		visiting[ev.ID] = true
		var list []*pdu.Event
		good := true
		for _, a := range ev.AuthEvents {
			ae := all[a]
			if ae == nil || !visit(ae) {
				good = false
				break
			}
			list = append(list, ae)
		}
		if good && ev.Type != "m.room.create" {
			var c *pdu.Event
			if pdu.RoomIDFromCreate(version) {
				c = create
			}
			auth, err := authrules.SelectAuthEventsIn(version, ev, list, c)
			good = err == nil && authrules.Check(version, ev, auth) == nil
		} else if good {
			good = authrules.Check(version, ev, map[authrules.StateKey]*pdu.Event{}) == nil
		}
		visiting[ev.ID] = false
		ok[ev.ID] = good
		return good
	}
	events := make([]*pdu.Event, 0, len(all))
	for _, ev := range all {
		if visit(ev) {
			events = append(events, ev)
		}
	}
	state := map[authrules.StateKey]string{}
	for _, sid := range stateIDs {
		ev := all[sid]
		if ev == nil || !ok[sid] {
			continue
		}
		state[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = sid
	}
	if state[authrules.StateKey{Type: "m.room.create"}] != create.ID {
		return nil, errors.New("the state lacks the create event")
	}
	// The join itself must pass against the state given.
	needed := authrules.Needed(join.Type, join.StateKey, join.Sender, join.Content)
	auth := map[authrules.StateKey]*pdu.Event{}
	for _, k := range needed {
		if sid, ok := state[k]; ok {
			auth[k] = all[sid]
		}
	}
	if err := authrules.Check(version, join, auth); err != nil {
		return nil, fmt.Errorf("the state does not allow our join: %w", err)
	}
	delete(state, authrules.StateKey{Type: "m.room.member", StateKey: *join.StateKey})
	if prev, ok := findMember(all, stateIDs, *join.StateKey); ok {
		state[authrules.StateKey{Type: "m.room.member", StateKey: *join.StateKey}] = prev
	}
	return &rooms.RemoteJoin{RoomID: roomID, Version: version, Events: events, State: state, Join: join}, nil
}

// findMember finds user's member event in the state list, other than a
// copy of our join (some servers put the join in the state).
func findMember(all map[string]*pdu.Event, stateIDs []string, user string) (string, bool) {
	for _, sid := range stateIDs {
		ev := all[sid]
		if ev != nil && ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == user &&
			gjson.GetBytes(ev.Content, "membership").Str != "join" {
			return sid, true
		}
	}
	return "", false
}

// joinedServers lists the servers, other than ours, with a joined member
// in the join's state.
func joinedServers(rj *rooms.RemoteJoin, own string) []string {
	byID := make(map[string]*pdu.Event, len(rj.Events))
	for _, ev := range rj.Events {
		byID[ev.ID] = ev
	}
	seen := map[string]bool{own: true}
	var out []string
	for k, sid := range rj.State {
		if k.Type != "m.room.member" {
			continue
		}
		ev := byID[sid]
		if ev == nil || gjson.GetBytes(ev.Content, "membership").Str != "join" {
			continue
		}
		if d := pdu.Domain(k.StateKey); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// dedupe keeps the first of each server, leaving out own and empty names.
func dedupe(servers []string, own string) []string {
	seen := map[string]bool{own: true, "": true}
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// remoteErr turns a remote server's Matrix error into ours, so the client
// sees the resident server's refusal (M_FORBIDDEN for a ban, say), and
// anything else into 502-like M_UNKNOWN.
func remoteErr(err error) error {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode != "" {
		status := http.StatusBadGateway
		if he.Response != nil && he.Response.StatusCode >= 400 && he.Response.StatusCode < 500 {
			status = he.Response.StatusCode
		}
		return apierr.New(status, he.RespError.ErrCode, he.RespError.Err)
	}
	return apierr.New(http.StatusBadGateway, "M_UNKNOWN", "The remote server could not be reached: "+err.Error())
}

// Leave leaves roomID (or rejects an invite to it) through the first of
// servers that lets it: make_leave, sign, send_leave, then store the leave
// over the state held. It returns the leave's event ID.
func (j *Joiner) Leave(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	var lastErr error = apierr.NotFound("No server to leave " + roomID + " through")
	for _, srv := range dedupe(servers, j.cfg.ServerName) {
		ml, err := j.cfg.Client.MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: id.RoomID(roomID), UserID: id.UserID(user), Via: srv})
		if err != nil {
			lastErr = remoteErr(err)
			continue
		}
		version := string(ml.RoomVersion)
		if !pdu.Supported(version) {
			lastErr = apierr.New(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "Room version "+version)
			continue
		}
		ev, err := j.signTemplate(ml.Event, version, roomID, user, "leave", content)
		if err != nil {
			lastErr = err
			continue
		}
		if err := j.cfg.Client.SendLeave(ctx, &federation.ReqSendLeave{RoomID: id.RoomID(roomID), EventID: id.EventID(ev.ID), Event: ev.Raw, Via: srv}); err != nil {
			lastErr = remoteErr(err)
			continue
		}
		if _, err := j.cfg.Rooms.PersistJoined(ctx, rooms.RemoteJoin{RoomID: roomID, Version: version, Join: ev}); err != nil {
			return "", err
		}
		return ev.ID, nil
	}
	return "", lastErr
}

// SendInvite takes an invite of another server's user to that server
// (invite v2, invite_room_state as full PDUs) and returns the event as it
// came back: our event, with a valid signature of the invitee's server
// added.
func (j *Joiner) SendInvite(ctx context.Context, version string, ev *pdu.Event, inviteState [][]byte) (*pdu.Event, error) {
	if ev.StateKey == nil {
		return nil, fmt.Errorf("%w: invite without state_key", rooms.ErrInvalid)
	}
	target := *ev.StateKey
	state := make([]federation.PDU, len(inviteState))
	for i, s := range inviteState {
		state[i] = s
	}
	resp, err := j.cfg.Client.SendInvite(ctx, &federation.ReqSendInvite{RoomID: id.RoomID(ev.RoomID), UserID: id.UserID(target),
		EventID: id.EventID(ev.ID), Event: ev.Raw, InviteRoomState: state, RoomVersion: id.RoomVersion(version)})
	if err != nil {
		return nil, remoteErr(err)
	}
	signed, err := pdu.Parse(resp.Event, version)
	if err != nil {
		return nil, apierr.New(http.StatusBadGateway, "M_UNKNOWN", "The invitee's server answered a bad event: "+err.Error())
	}
	if signed.ID != ev.ID {
		return nil, apierr.New(http.StatusBadGateway, "M_UNKNOWN", "The invitee's server answered another event")
	}
	if err := verifyFrom(ctx, j.cfg.Keys, version, signed, pdu.Domain(target)); err != nil {
		return nil, apierr.New(http.StatusBadGateway, "M_UNKNOWN", "The invitee's server did not sign the invite: "+err.Error())
	}
	return signed, nil
}

// verifyFrom requires a valid signature of server on ev.
func verifyFrom(ctx context.Context, keys checks.Keys, version string, ev *pdu.Event, server string) error {
	var last error = fmt.Errorf("no signature of %s", server)
	for _, keyID := range ev.SignatureKeyIDs(server) {
		pub, err := keys.VerifyKey(ctx, server, keyID, ev.OriginServerTS, version)
		if err != nil {
			last = err
			continue
		}
		if last = ev.VerifySignature(version, server, keyID, pub); last == nil {
			return nil
		}
	}
	return last
}
