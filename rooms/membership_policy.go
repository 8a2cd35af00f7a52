package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// Membership checks live here, in one place, so that every route to an
// m.room.member event a local client causes passes them: /invite, /join,
// /kick, /ban, /unban, /leave, the state PUT, createRoom's invite list and
// initial_state, and the desks. The room's auth rules (rooms/authrules) come
// on top; nothing here loosens them.

// MembershipPolicy is the server's own say over invites, beyond the room's
// auth rules: whether the invitee exists here, and whether their blocks and
// DM policy accept the inviter. It may do I/O (the graph may be Neo4j), so
// the room service calls it before a write reaches the writer goroutine,
// never inside it. Its errors go back to the client unchanged.
type MembershipPolicy interface {
	CheckInvite(ctx context.Context, inviter, invitee string) error
}

// checkInvite applies the policy to one invite. The inviter inviting
// themselves is left to the auth rules.
func (s *Service) checkInvite(ctx context.Context, inviter, invitee string) error {
	if s.cfg.Policy == nil || inviter == invitee {
		return nil
	}
	return s.cfg.Policy.CheckInvite(ctx, inviter, invitee)
}

// errNotInRoom is the one answer to a user who is not in a room, whatever
// they tried there: it matches ErrUnknownRoom, which the client API turns
// into the same text as for a room that does not exist, so room IDs and the
// state of rooms one is not in cannot be probed.
func errNotInRoom(roomID string) error {
	return fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
}

// checkClientState refuses the state a client may never write itself:
//   - join_authorised_via_users_server in a member event: naming the user
//     who authorised a restricted join is the server's job (see
//     restrictedJoinVia); a client that names one could join any
//     restricted room.
//   - third-party invites, both m.room.third_party_invite events and member
//     events redeeming one: Parley has no third-party identifiers, and a
//     member could otherwise plant a key of their own and later sign their
//     own way back in after a kick.
//
// It reads only the content, so it runs before the writer.
func checkClientState(typ string, stateKey *string, content json.RawMessage) error {
	switch typ {
	case "m.room.third_party_invite":
		return fmt.Errorf("%w: this server has no third-party identifiers, so it does not accept m.room.third_party_invite events", ErrForbidden)
	case "m.room.member":
		if stateKey == nil {
			return nil // not state: the auth rules refuse it
		}
		if gjson.GetBytes(content, "third_party_invite").Exists() {
			return fmt.Errorf("%w: this server has no third-party identifiers, so member events may not carry third_party_invite", ErrForbidden)
		}
		if gjson.GetBytes(content, "join_authorised_via_users_server").Exists() {
			return fmt.Errorf("%w: join_authorised_via_users_server is set by the server, not by clients; join through /join", ErrForbidden)
		}
	}
	return nil
}

// checkClientMember runs checkClientState and, for an invite, the policy.
// It is for member events whose content a client wrote (the state PUT and
// initial_state); sender is the one who sends it.
func (s *Service) checkClientMember(ctx context.Context, sender, typ string, stateKey *string, content json.RawMessage) error {
	if err := checkClientState(typ, stateKey, content); err != nil {
		return err
	}
	if typ == "m.room.member" && stateKey != nil && membershipOf(content) == "invite" {
		return s.checkInvite(ctx, sender, *stateKey)
	}
	return nil
}

// restrictedJoinVia decides a join into a room whose join rule is
// "restricted" or "knock_restricted" (room versions 8 and later). When the
// joiner is neither invited nor joined, the server checks the allow list
// itself: an m.room_membership condition holds when the joiner is joined to
// that room on this server. If one holds, it returns a local member of the
// room with the power to invite, to name in join_authorised_via_users_server
// (the spec's rule, which the auth rules then check again); if none holds,
// the join is refused. It returns "" when the join needs no authoriser.
//
// It runs in the writer. The allowed rooms' memberships come from the
// writer's cache when it holds the room (so writes earlier in this batch
// count), else from one read of the joiner's rooms in the store, however
// long the allow list: a local read, never the graph, and only on this
// rare path.
func (b *batch) restrictedJoinVia(ctx context.Context, rs *roomState, user string) (string, error) {
	jr := rs.get("m.room.join_rules", "")
	if jr == nil {
		return "", nil
	}
	switch rule := gjson.GetBytes(jr.Content, "join_rule"); {
	case rule.Type != gjson.String, rule.Str != "restricted" && rule.Str != "knock_restricted":
		return "", nil
	}
	switch rs.membership(user) {
	case "join", "invite", "ban":
		return "", nil // allowed, or refused, by the auth rules as it is
	}
	allowed := false
	var joined map[string]bool // the user's joined rooms in the store, read once when needed
	for _, cond := range gjson.GetBytes(jr.Content, "allow").Array() {
		roomID := cond.Get("room_id")
		if cond.Get("type").Str != "m.room_membership" || roomID.Type != gjson.String || roomID.Str == rs.id {
			continue
		}
		if other, ok := b.s.cache.rooms[roomID.Str]; ok {
			allowed = other.membership(user) == "join" // the cache counts this batch's writes
		} else {
			if joined == nil {
				var err error
				if joined, err = b.joinedRooms(ctx, user); err != nil {
					return "", err
				}
			}
			allowed = joined[roomID.Str]
		}
		if allowed {
			break
		}
	}
	if !allowed {
		return "", fmt.Errorf("%w: this room admits only members of the rooms its join rules allow, and you are in none of them", ErrForbidden)
	}
	via := rs.localInviter(b.s.cfg.ServerName)
	if via == "" {
		return "", fmt.Errorf("%w: no one on this server who may invite is in the room, so no one can authorise the join", ErrForbidden)
	}
	return via, nil
}

// joinedRooms reads the rooms user is joined to from the store: one query,
// however long the allow list.
func (b *batch) joinedRooms(ctx context.Context, user string) (map[string]bool, error) {
	ms, err := b.s.store.UserMemberships(ctx, user, "join")
	if err != nil {
		return nil, fmt.Errorf("restricted join: %w", err)
	}
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		out[m.RoomID] = true
	}
	return out, nil
}

// localInviter picks a joined local member who may invite: the one with
// the highest power level named in the power levels (room version 12
// creators, never named, rank above all), ties broken by user ID; failing
// that, when everyone may invite, the first joined local member by user
// ID. "" when there is none.
func (rs *roomState) localInviter(serverName string) string {
	pl := rs.powerLevels()
	local := func(u string) bool { return pdu.Domain(u) == serverName && rs.membership(u) == "join" }
	best, bestLevel := "", int64(0)
	consider := func(u string, lvl int64) {
		if lvl < pl.Invite || !local(u) {
			return
		}
		if best == "" || lvl > bestLevel || (lvl == bestLevel && u < best) {
			best, bestLevel = u, lvl
		}
	}
	for _, u := range pl.Creators {
		consider(u, authrules.CreatorLevel)
	}
	for u, lvl := range pl.Users {
		consider(u, lvl)
	}
	if best != "" || pl.UsersDefault < pl.Invite {
		return best
	}
	var members []string
	for k := range rs.state {
		if k.Type == "m.room.member" && strings.HasPrefix(k.StateKey, "@") && local(k.StateKey) {
			if _, named := pl.Users[k.StateKey]; !named {
				members = append(members, k.StateKey)
			}
		}
	}
	if len(members) == 0 {
		return ""
	}
	return slices.Min(members)
}

// withJoinAuthoriser returns content with join_authorised_via_users_server
// set to via. content is a client's JSON object, already checked.
func withJoinAuthoriser(content json.RawMessage, via string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(content, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: member event content must be an object", ErrInvalid)
	}
	m["join_authorised_via_users_server"] = mustJSON(via)
	return mustJSON(m), nil
}
