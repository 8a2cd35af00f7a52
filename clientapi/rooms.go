package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

type createRoomRequest struct {
	Visibility                string             `json:"visibility"`
	RoomAliasName             string             `json:"room_alias_name"`
	Name                      string             `json:"name"`
	Topic                     string             `json:"topic"`
	Invite                    []string           `json:"invite"`
	RoomVersion               string             `json:"room_version"`
	CreationContent           json.RawMessage    `json:"creation_content"`
	InitialState              []rooms.StateEvent `json:"initial_state"`
	Preset                    string             `json:"preset"`
	IsDirect                  bool               `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage    `json:"power_level_content_override"`
}

func (a *API) profileOf(ctx context.Context, userID string) rooms.Profile {
	u, err := a.store.GetUser(ctx, userID)
	if err != nil {
		return rooms.Profile{}
	}
	return rooms.Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	var req createRoomRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	switch req.Preset {
	case "", "private_chat", "trusted_private_chat", "public_chat":
	default:
		return apierr.BadJSON("Unknown preset " + req.Preset)
	}
	if req.Visibility != "" && req.Visibility != "public" && req.Visibility != "private" {
		return apierr.BadJSON("visibility must be public or private")
	}
	if len(req.Name) > 255 || len(req.Topic) > 4096 {
		return apierr.BadJSON("name or topic is too long")
	}
	for _, se := range req.InitialState {
		if se.Type == "" || len(se.Type) > 255 {
			return apierr.BadJSON("initial_state events need a type")
		}
	}
	for _, c := range [][]byte{req.CreationContent, req.PowerLevelContentOverride} {
		if len(c) > 0 && (c[0] != '{') {
			return apierr.BadJSON("creation_content and power_level_content_override must be objects")
		}
	}
	cr := rooms.CreateRequest{
		Creator: s.UserID, CreatorProfile: a.profileOf(ctx, s.UserID), RoomVersion: req.RoomVersion,
		Preset: req.Preset, Public: req.Visibility == "public", Name: req.Name, Topic: req.Topic,
		IsDirect: req.IsDirect, InitialState: req.InitialState, CreationContent: req.CreationContent,
		PowerLevelOverride: req.PowerLevelContentOverride, InviteProfiles: map[string]rooms.Profile{},
	}
	seen := map[string]bool{s.UserID: true}
	for _, u := range req.Invite {
		if !pdu.ValidUserID(u) {
			return apierr.InvalidParam("Invalid user ID to invite: " + u)
		}
		if seen[u] {
			continue
		}
		seen[u] = true // rooms.CreateRoom asks the invite policy about each
		cr.Invite = append(cr.Invite, u)
		cr.InviteProfiles[u] = a.profileOf(ctx, u)
	}
	var alias string
	if req.RoomAliasName != "" {
		alias = "#" + req.RoomAliasName + ":" + a.cfg.ServerName
		if strings.ContainsAny(req.RoomAliasName, ":# ") || !pdu.ValidRoomAlias(alias) {
			return apierr.New(http.StatusBadRequest, "M_INVALID_PARAM", "Invalid room alias name")
		}
		cr.Alias = alias
	}
	roomID, err := a.rooms.CreateRoom(ctx, cr)
	if err != nil {
		return err
	}
	if req.IsDirect && len(cr.Invite) > 0 {
		if err := a.addDirect(ctx, s.UserID, cr.Invite[0], roomID); err != nil {
			a.log.Warn("update m.direct", "user", s.UserID, "err", err)
		}
	}
	return writeJSON(w, map[string]string{"room_id": roomID})
}

// addDirect records a DM in the creator's m.direct account data, so every
// one of their devices finds the same conversation again.
func (a *API) addDirect(ctx context.Context, userID, peer, roomID string) error {
	direct := map[string][]string{}
	if raw, err := a.store.GetAccountData(ctx, userID, "", "m.direct"); err == nil {
		_ = json.Unmarshal([]byte(raw), &direct)
	}
	for _, id := range direct[peer] {
		if id == roomID {
			return nil
		}
	}
	direct[peer] = append(direct[peer], roomID)
	body, err := json.Marshal(direct)
	if err != nil {
		return err
	}
	return a.rooms.PutAccountData(ctx, userID, "", "m.direct", body)
}

// resolveRoom accepts a room ID or an alias; for another server's alias
// (with federation on) it asks that server, and returns the servers it
// names to join through.
func (a *API) resolveRoom(ctx context.Context, idOrAlias string) (string, []string, error) {
	if strings.HasPrefix(idOrAlias, "!") {
		if !pdu.ValidRoomID(idOrAlias) {
			return "", nil, apierr.InvalidParam("Invalid room ID")
		}
		return idOrAlias, nil, nil
	}
	if !strings.HasPrefix(idOrAlias, "#") {
		return "", nil, apierr.InvalidParam("Expected a room ID or alias")
	}
	if a.remote != nil && pdu.ValidRoomAlias(idOrAlias) && pdu.Domain(idOrAlias) != a.cfg.ServerName {
		roomID, servers, err := a.remote.ResolveAlias(ctx, idOrAlias)
		if err != nil {
			return "", nil, apierr.NotFound("Room alias not found")
		}
		return roomID, servers, nil
	}
	// Joining by alias answers any alias it cannot resolve (unknown,
	// malformed, another server's) the same way.
	roomID, _, err := a.directory.Resolve(ctx, idOrAlias)
	if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrInvalidParam) {
		return "", nil, apierr.NotFound("Room alias not found")
	}
	return roomID, nil, err
}

func (a *API) joinRoomOrAlias(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID, servers, err := a.resolveRoom(r.Context(), param(r, "roomIdOrAlias"))
	if err != nil {
		return err
	}
	return a.doJoin(w, r, s, roomID, servers)
}

func (a *API) joinRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.doJoin(w, r, s, param(r, "roomId"), nil)
}

func (a *API) doJoin(w http.ResponseWriter, r *http.Request, s *session, roomID string, aliasServers []string) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	_, err := a.rooms.ChangeMembership(r.Context(), rooms.MembershipRequest{
		RoomID: roomID, Sender: s.UserID, Target: s.UserID, Membership: "join", Reason: req.Reason,
		Profile: a.profileOf(r.Context(), s.UserID),
	})
	if errors.Is(err, rooms.ErrUnknownRoom) {
		// Not held, or held without a user of ours in it: only a resident
		// server can place the join (rooms.ErrNotResident).
		err = a.remoteJoin(r.Context(), r, roomID, s.UserID, aliasServers, req.Reason)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"room_id": roomID})
}

type targetRequest struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

func (a *API) memberChange(w http.ResponseWriter, r *http.Request, s *session, membership string, self bool) error {
	var req targetRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	target := req.UserID
	if self {
		target = s.UserID
	} else if !pdu.ValidUserID(target) {
		return apierr.BadJSON("user_id must be a valid user ID")
	}
	mr := rooms.MembershipRequest{RoomID: param(r, "roomId"), Sender: s.UserID, Target: target, Membership: membership, Reason: req.Reason}
	if membership == "invite" {
		// The room service asks the invite policy (invite_policy.go).
		mr.Profile = a.profileOf(r.Context(), target)
	}
	_, err := a.rooms.ChangeMembership(r.Context(), mr)
	if self && membership == "leave" && errors.Is(err, rooms.ErrNotResident) {
		// A remote invite to reject, or a room this server no longer has a
		// member in: leave through a resident server.
		err = a.remoteLeave(r.Context(), r, mr.RoomID, s.UserID, req.Reason)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) invite(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.memberChange(w, r, s, "invite", false)
}
func (a *API) leave(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.memberChange(w, r, s, "leave", true)
}
func (a *API) kick(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.memberChange(w, r, s, "leave", false)
}
func (a *API) ban(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.memberChange(w, r, s, "ban", false)
}

func (a *API) unban(w http.ResponseWriter, r *http.Request, s *session) error {
	var req targetRequest
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if !pdu.ValidUserID(req.UserID) {
		return apierr.BadJSON("user_id must be a valid user ID")
	}
	// The room service checks the caller before the target, so an
	// outsider cannot tell who is banned.
	mr := rooms.MembershipRequest{RoomID: param(r, "roomId"), Sender: s.UserID, Target: req.UserID, Membership: "unban", Reason: req.Reason}
	if _, err := a.rooms.ChangeMembership(r.Context(), mr); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) forget(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	m, err := a.store.GetMembership(r.Context(), roomID, s.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("You have never been in this room")
	}
	if err != nil {
		return err
	}
	if m.Membership == "join" || m.Membership == "invite" {
		return apierr.New(http.StatusBadRequest, "M_UNKNOWN", "Leave the room before forgetting it")
	}
	if err := a.store.SetForgotten(r.Context(), roomID, s.UserID); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) joinedRooms(w http.ResponseWriter, r *http.Request, s *session) error {
	ms, err := a.store.UserMemberships(r.Context(), s.UserID, "join")
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.RoomID)
	}
	return writeJSON(w, map[string]any{"joined_rooms": ids})
}

func (a *API) send(w http.ResponseWriter, r *http.Request, s *session) error {
	content, err := a.readObject(r)
	if err != nil {
		return err
	}
	typ, txn := param(r, "eventType"), param(r, "txnId")
	if !pdu.ValidEventType(typ) {
		return apierr.InvalidParam("Invalid event type")
	}
	if !pdu.ValidTxnID(txn) {
		return apierr.InvalidParam(txnIDRule)
	}
	if typ == "m.room.redaction" {
		// The spec lets clients send redactions through /send too (room
		// version 11 puts "redacts" in the content); same rules as /redact.
		target := gjson.GetBytes(content, "redacts").String()
		if !pdu.ValidEventID(target) {
			return apierr.BadJSON("m.room.redaction needs content.redacts, an event ID")
		}
		if err := a.requireJoined(r, s, param(r, "roomId")); err != nil {
			return err
		}
		id, err := a.rooms.Redact(r.Context(), rooms.RedactRequest{RoomID: param(r, "roomId"), Sender: s.UserID,
			DeviceID: s.DeviceID, TxnID: txn, EventID: target, Reason: gjson.GetBytes(content, "reason").String()})
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]string{"event_id": id})
	}
	if err := a.checkSharedMedia(r.Context(), s, content); err != nil {
		return err
	}
	id, err := a.rooms.Send(r.Context(), rooms.SendRequest{
		RoomID: param(r, "roomId"), Sender: s.UserID, DeviceID: s.DeviceID, TxnID: txn,
		Type: typ, Content: content,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"event_id": id})
}

func (a *API) putState(w http.ResponseWriter, r *http.Request, s *session) error {
	content, err := a.readObject(r)
	if err != nil {
		return err
	}
	typ := param(r, "eventType")
	key := param(r, "stateKey")
	if !pdu.ValidEventType(typ) || len(key) > 255 || !utf8.ValidString(key) {
		return apierr.InvalidParam("Invalid event type or state key")
	}
	id, err := a.rooms.Send(r.Context(), rooms.SendRequest{
		RoomID: param(r, "roomId"), Sender: s.UserID, DeviceID: s.DeviceID, Type: typ, StateKey: &key, Content: content,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"event_id": id})
}

func (a *API) redact(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if !pdu.ValidTxnID(param(r, "txnId")) {
		return apierr.InvalidParam(txnIDRule)
	}
	if err := a.requireJoined(r, s, param(r, "roomId")); err != nil {
		return err
	}
	id, err := a.rooms.Redact(r.Context(), rooms.RedactRequest{
		RoomID: param(r, "roomId"), Sender: s.UserID, DeviceID: s.DeviceID, TxnID: param(r, "txnId"),
		EventID: param(r, "eventId"), Reason: req.Reason,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"event_id": id})
}
