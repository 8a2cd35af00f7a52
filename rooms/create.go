package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// StateEvent is a state event given by a client (initial_state).
type StateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// Profile is what a member event carries about its user.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// CreateRequest is a createRoom call, already validated for shape.
type CreateRequest struct {
	Creator        string
	CreatorProfile Profile
	RoomVersion    string // "" means the configured default (Config.DefaultRoomVersion)
	Preset         string // private_chat, trusted_private_chat, public_chat
	Public         bool   // visibility=public: list in the room directory
	Name, Topic    string
	Alias          string // full alias (#local:server), reserved in the room's transaction
	Invite         []string
	InviteProfiles map[string]Profile
	IsDirect       bool
	InitialState   []StateEvent
	// ByService: the invites are made by a server-side service (the
	// desks); see MembershipRequest.ByService.
	ByService          bool
	CreationContent    json.RawMessage // extra keys for the create event
	PowerLevelOverride json.RawMessage
	// RoomID is the new room's ID, from NewRoomID; "" means a fresh one.
	// A caller that must find the room again after a crash (desks) records
	// the ID before it creates the room.
	RoomID string
}

// NewRoomID returns a fresh room ID on this server.
func (s *Service) NewRoomID() string { return "!" + randomString(18) + ":" + s.cfg.ServerName }

// CreateRoom writes a new room's opening events in one commit and returns
// its ID.
func (s *Service) CreateRoom(ctx context.Context, req CreateRequest) (string, error) {
	version := req.RoomVersion
	if version == "" {
		version = s.cfg.DefaultRoomVersion
	}
	if !pdu.Supported(version) {
		return "", fmt.Errorf("%w: %s", ErrBadRoomVersion, version)
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Public {
			preset = "public_chat"
		}
	}
	if err := s.checkCreate(req); err != nil {
		return "", err
	}
	// initial_state is client-written state: it passes the checks of the
	// state PUT, and every invite, there or in the invite list, the policy.
	for _, se := range req.InitialState {
		if err := s.checkClientMember(ctx, req.Creator, se.Type, &se.StateKey, se.Content); err != nil {
			return "", err
		}
	}
	if !req.ByService {
		for _, u := range req.Invite {
			if err := s.checkInvite(ctx, req.Creator, u); err != nil {
				return "", err
			}
		}
		if err := s.cfg.Actions.createRoom(req.Creator); err != nil {
			return "", err
		}
		if err := s.cfg.Actions.inviteAtCreate(req.Creator, req.Invite); err != nil {
			s.cfg.Actions.refundCreateRoom(req.Creator)
			return "", err
		}
	}
	// Other servers' users are invited after the room exists, each through
	// invite v2 (remote_invite.go): their server must sign the invite
	// before it is written.
	remoteInvites := remoteUsers(req.Invite, s.cfg.ServerName)
	protos, err := openingEvents(req, preset, version, s.cfg.ServerName)
	if err != nil {
		return "", err
	}
	roomID := req.RoomID
	switch {
	case roomID != "" && pdu.RoomIDFromCreate(version):
		// A version 12 room's ID is its create event's hash: it cannot be
		// chosen beforehand (desks keep their rooms on an earlier version).
		return "", fmt.Errorf("%w: room version %s derives the room ID from the create event", ErrInvalid, version)
	case roomID == "":
		if roomID, err = s.newRoomID(version, protos); err != nil {
			return "", err
		}
	}
	err = s.submitCost(ctx, req.Creator, len(protos), func(ctx context.Context, b *batch) error {
		return b.createRoom(ctx, roomID, version, req, protos)
	})
	if err != nil {
		return "", err
	}
	for _, u := range remoteInvites {
		if _, err := s.inviteRemote(ctx, MembershipRequest{RoomID: roomID, Sender: req.Creator, Target: u, Membership: "invite", IsDirect: req.IsDirect}); err != nil {
			return "", fmt.Errorf("room %s was created, but inviting %s failed: %w", roomID, u, err)
		}
	}
	return roomID, nil
}

// remoteUsers lists the users of users who are not of serverName.
func remoteUsers(users []string, serverName string) []string {
	var out []string
	for _, u := range users {
		if pdu.Domain(u) != serverName {
			out = append(out, u)
		}
	}
	return out
}

func (b *batch) createRoom(ctx context.Context, roomID, version string, req CreateRequest, protos []pdu.Proto) error {
	now := b.s.cfg.Now()
	// The room row and create event go in first; a refusal of any later
	// opening event poisons the whole batch, so no half-made room remains.
	rs := &roomState{id: roomID, version: version, creator: req.Creator, state: map[authrules.StateKey]*stateEntry{}, bytes: roomOverhead}
	createProto := protos[0]
	createProto.RoomID = roomID
	if createProto.OriginServerTS == 0 { // version 12 fixed it to derive the room ID
		createProto.OriginServerTS = now.UnixMilli()
	}
	createEv, err := pdu.Build(createProto, version, b.s.cfg.Key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// The alias is reserved in the room's own transaction, so two creates
	// racing for one alias cannot both get a room that names it.
	if req.Alias != "" {
		taken, err := b.tx.AliasTaken(ctx, req.Alias)
		if err != nil {
			return dbErr(err)
		}
		if taken {
			return fmt.Errorf("%w: %s", ErrRoomInUse, req.Alias)
		}
	}
	if err := b.tx.InsertRoom(ctx, storage.Room{RoomID: roomID, Version: version, Creator: req.Creator, Published: req.Public, CreatedTS: now.UnixMilli()}); err != nil {
		return dbErr(err)
	}
	if req.Alias != "" {
		if err := b.tx.InsertAlias(ctx, req.Alias, roomID, req.Creator); errors.Is(err, storage.ErrConflict) {
			return &txError{err: fmt.Errorf("%w: %s", ErrRoomInUse, req.Alias)} // taken outside the writer meanwhile
		} else if err != nil {
			return dbErr(err)
		}
	}
	b.s.cache.put(rs)
	b.onUndo(func() { b.s.cache.remove(roomID) })
	if _, err := b.write(ctx, rs, createEv, nil); err != nil {
		return err
	}
	for _, p := range protos[1:] {
		p.OriginServerTS = now.UnixMilli()
		if _, _, err := b.appendEvent(ctx, rs, p, nil); err != nil {
			// The room row is already written: a refused opening event
			// poisons the batch so that nothing of the room is kept.
			return &txError{err: err}
		}
	}
	return nil
}

func strPtr(s string) *string { return &s }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on values built here, which always marshal
	}
	return b
}

// openingEvents lays out a new room's events in the spec's order: create,
// the creator's join, power levels, alias, preset state, initial_state,
// name, topic, then invites.
func openingEvents(req CreateRequest, preset, version, serverName string) ([]pdu.Proto, error) {
	createContent := map[string]any{}
	if len(req.CreationContent) > 0 {
		if err := json.Unmarshal(req.CreationContent, &createContent); err != nil {
			return nil, fmt.Errorf("%w: creation_content must be an object", ErrInvalid)
		}
	}
	createContent["room_version"] = version
	if version == "10" {
		createContent["creator"] = req.Creator
	}
	creatorsCreateContent(version, preset, req, createContent)
	state := func(typ, key string, content any) pdu.Proto {
		return pdu.Proto{Sender: req.Creator, Type: typ, StateKey: strPtr(key), Content: mustJSON(content)}
	}
	out := []pdu.Proto{state("m.room.create", "", createContent)}

	join := map[string]any{"membership": "join"}
	if req.CreatorProfile.DisplayName != "" {
		join["displayname"] = req.CreatorProfile.DisplayName
	}
	if req.CreatorProfile.AvatarURL != "" {
		join["avatar_url"] = req.CreatorProfile.AvatarURL
	}
	out = append(out, state("m.room.member", req.Creator, join))

	users := map[string]any{req.Creator: 100}
	if preset == "trusted_private_chat" {
		for _, u := range req.Invite {
			users[u] = 100
		}
	}
	pl := map[string]any{
		"users": users, "users_default": 0,
		"events": map[string]any{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.server_acl": 100, "m.room.encryption": 100, "m.room.topic": 50,
		},
		"events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
		"notifications": map[string]any{"room": 50},
	}
	if len(req.PowerLevelOverride) > 0 {
		var override map[string]json.RawMessage
		if err := json.Unmarshal(req.PowerLevelOverride, &override); err != nil {
			return nil, fmt.Errorf("%w: power_level_content_override must be an object", ErrInvalid)
		}
		for k, v := range override {
			pl[k] = v
		}
	}
	if err := creatorsPowerLevels(version, req, createContent, pl); err != nil {
		return nil, err
	}
	out = append(out, state("m.room.power_levels", "", pl))

	if req.Alias != "" {
		out = append(out, state("m.room.canonical_alias", "", map[string]any{"alias": req.Alias}))
	}
	joinRule, visibility, guests := "invite", "shared", "can_join"
	if preset == "public_chat" {
		joinRule, guests = "public", "forbidden"
	}
	out = append(out,
		state("m.room.join_rules", "", map[string]any{"join_rule": joinRule}),
		state("m.room.history_visibility", "", map[string]any{"history_visibility": visibility}),
		state("m.room.guest_access", "", map[string]any{"guest_access": guests}),
	)
	for _, se := range req.InitialState {
		if len(se.Content) == 0 {
			se.Content = json.RawMessage(`{}`)
		}
		out = append(out, pdu.Proto{Sender: req.Creator, Type: se.Type, StateKey: strPtr(se.StateKey), Content: se.Content})
	}
	if req.Name != "" {
		out = append(out, state("m.room.name", "", map[string]any{"name": req.Name}))
	}
	if req.Topic != "" {
		out = append(out, state("m.room.topic", "", map[string]any{"topic": req.Topic}))
	}
	for _, u := range req.Invite {
		if pdu.Domain(u) != serverName {
			continue // invited after, through invite v2
		}
		c := map[string]any{"membership": "invite"}
		if req.IsDirect {
			c["is_direct"] = true
		}
		if p, ok := req.InviteProfiles[u]; ok {
			if p.DisplayName != "" {
				c["displayname"] = p.DisplayName
			}
			if p.AvatarURL != "" {
				c["avatar_url"] = p.AvatarURL
			}
		}
		out = append(out, state("m.room.member", u, c))
	}
	return out, nil
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// randomString returns n random letters, for room IDs.
func randomString(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range buf {
		buf[i] = idAlphabet[int(buf[i])%len(idAlphabet)]
	}
	return string(buf)
}
