package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Room aliases and the published room directory. There is no federation
// yet, so only this server's aliases and rooms exist.

const (
	defaultPublicRoomsLimit = 100
	maxPublicRoomsLimit     = 500
	// maxDirectoryScan bounds how many published rooms one filtered search
	// examines; past it the search returns what it has and a next_batch.
	maxDirectoryScan = 2000
	// maxRoomCountEstimate caps the scan behind total_room_count_estimate.
	maxRoomCountEstimate = 10000
)

// localAlias reads the path's alias and checks that it is a well-formed
// alias of this server.
func (a *API) localAlias(r *http.Request) (string, error) {
	alias := param(r, "alias")
	if !pdu.ValidRoomAlias(alias) {
		return "", apierr.InvalidParam("Room alias invalid")
	}
	return alias, nil
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	alias, err := a.localAlias(r)
	if err != nil {
		return err
	}
	if pdu.Domain(alias) != a.cfg.ServerName {
		return apierr.NotFound("Room alias " + alias + " not found")
	}
	roomID, _, err := a.store.GetAlias(r.Context(), alias)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Room alias " + alias + " not found")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"room_id": roomID, "servers": []string{a.cfg.ServerName}})
}

// putAlias maps a new alias of this server to a room the caller is joined to.
func (a *API) putAlias(w http.ResponseWriter, r *http.Request, s *session) error {
	alias, err := a.localAlias(r)
	if err != nil {
		return err
	}
	if pdu.Domain(alias) != a.cfg.ServerName {
		return apierr.InvalidParam("Room alias must be on " + a.cfg.ServerName)
	}
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.RoomID == "" {
		return apierr.MissingParam("room_id is required")
	}
	if !pdu.ValidRoomID(req.RoomID) {
		return apierr.InvalidParam("Invalid room ID")
	}
	ctx := r.Context()
	if joined, err := a.isJoined(ctx, req.RoomID, s.UserID); err != nil {
		return err
	} else if !joined {
		return apierr.Forbidden("You are not in this room, or it does not exist")
	}
	err = a.store.PutAlias(ctx, alias, req.RoomID, s.UserID)
	if errors.Is(err, storage.ErrConflict) {
		return apierr.New(http.StatusConflict, "M_UNKNOWN", "Room alias "+alias+" already exists")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// deleteAlias lets the alias's creator, a server admin, or a member who may
// change the room's canonical alias remove it.
func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request, s *session) error {
	alias, err := a.localAlias(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	roomID, creator, err := a.store.GetAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Room alias " + alias + " not found")
	}
	if err != nil {
		return err
	}
	if creator != s.UserID && !s.IsAdmin {
		ok, err := a.mayEditDirectory(ctx, roomID, s.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return apierr.Forbidden("You may not remove this alias")
		}
	}
	if err := a.store.DeleteAlias(ctx, alias); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return writeJSON(w, emptyObject)
}

// isJoined reports whether user is joined to room; an unknown room is not
// an error, just not joined.
func (a *API) isJoined(ctx context.Context, roomID, userID string) (bool, error) {
	m, err := a.store.GetMembership(ctx, roomID, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Membership == "join", nil
}

// mayEditDirectory applies Synapse's rule for changing how a room is found:
// a joined member whose power level suffices for m.room.canonical_alias.
func (a *API) mayEditDirectory(ctx context.Context, roomID, userID string) (bool, error) {
	if joined, err := a.isJoined(ctx, roomID, userID); err != nil || !joined {
		return false, err
	}
	state, err := a.store.CurrentState(ctx, roomID)
	if err != nil {
		return false, err
	}
	var powerLevels, create []byte
	for i := range state {
		if e := &state[i]; e.Type == "m.room.power_levels" && e.StateKeyOr() == "" {
			powerLevels = []byte(gjson.GetBytes(e.Client, "content").Raw)
		} else if e.Type == "m.room.create" && e.StateKeyOr() == "" {
			create = e.Client
		}
	}
	return roomCreator(create, userID) || powerAllows(powerLevels, userID, "m.room.canonical_alias"), nil
}

// powerAllows reports whether userID's power level reaches what sending the
// state event evType needs, under the power_levels content given (nil when
// the room has none). Levels that are not integers deny.
func powerAllows(content []byte, userID, evType string) bool {
	if content == nil {
		// Without power levels, state_default is 0: any member may.
		return true
	}
	var pl struct {
		Users        map[string]int64 `json:"users"`
		UsersDefault int64            `json:"users_default"`
		Events       map[string]int64 `json:"events"`
		StateDefault *int64           `json:"state_default"`
	}
	if json.Unmarshal(content, &pl) != nil {
		return false
	}
	have := pl.UsersDefault
	if lvl, ok := pl.Users[userID]; ok {
		have = lvl
	}
	need := int64(50)
	if pl.StateDefault != nil {
		need = *pl.StateDefault
	}
	if lvl, ok := pl.Events[evType]; ok {
		need = lvl
	}
	return have >= need
}

func (a *API) getRoomVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID := param(r, "roomId")
	if !pdu.ValidRoomID(roomID) {
		return apierr.InvalidParam("Invalid room ID")
	}
	room, err := a.store.GetRoom(r.Context(), roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Room not found")
	}
	if err != nil {
		return err
	}
	visibility := "private"
	if room.Published {
		visibility = "public"
	}
	return writeJSON(w, map[string]string{"visibility": visibility})
}

// putRoomVisibility publishes or unpublishes a room. Publishing advertises
// the room to everyone, so it takes a server admin or a member with enough
// power to change the room's canonical alias.
func (a *API) putRoomVisibility(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	if !pdu.ValidRoomID(roomID) {
		return apierr.InvalidParam("Invalid room ID")
	}
	var req struct {
		Visibility string `json:"visibility"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Visibility == "" {
		req.Visibility = "public" // the spec's default
	}
	if req.Visibility != "public" && req.Visibility != "private" {
		return apierr.InvalidParam("visibility must be public or private")
	}
	ctx := r.Context()
	if _, err := a.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Room not found")
	} else if err != nil {
		return err
	}
	if !s.IsAdmin {
		ok, err := a.mayEditDirectory(ctx, roomID, s.UserID)
		if err != nil {
			return err
		}
		if !ok {
			return apierr.Forbidden("You may not change this room's visibility in the directory")
		}
	}
	if err := a.store.SetPublished(ctx, roomID, req.Visibility == "public"); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// publicRoom is one entry of the published room directory
// (PublishedRoomsChunk in the spec).
type publicRoom struct {
	RoomID           string `json:"room_id"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
}

// publicRoomsFilter is the POST body's filter.
type publicRoomsFilter struct {
	GenericSearchTerm string    `json:"generic_search_term"`
	RoomTypes         []*string `json:"room_types"` // null stands for "no type"
}

// matches reports whether a room passes the filter: the search term,
// case-insensitively, in its name, topic or canonical alias, and its type
// among those asked for.
func (f *publicRoomsFilter) matches(p *publicRoom) bool {
	if term := strings.ToLower(strings.TrimSpace(f.GenericSearchTerm)); term != "" {
		if !strings.Contains(strings.ToLower(p.Name), term) && !strings.Contains(strings.ToLower(p.Topic), term) &&
			!strings.Contains(strings.ToLower(p.CanonicalAlias), term) {
			return false
		}
	}
	if len(f.RoomTypes) == 0 {
		return true
	}
	for _, t := range f.RoomTypes {
		if (t == nil && p.RoomType == "") || (t != nil && *t == p.RoomType) {
			return true
		}
	}
	return false
}

// summarizeRoom builds a directory entry from a room's current state.
func summarizeRoom(roomID string, state []storage.Event) publicRoom {
	p := publicRoom{RoomID: roomID}
	str := func(e *storage.Event, path string) string {
		if v := gjson.GetBytes(e.Client, path); v.Type == gjson.String {
			return v.Str
		}
		return ""
	}
	for i := range state {
		e := &state[i]
		if e.Type == "m.room.member" {
			if e.Membership == "join" {
				p.NumJoinedMembers++
			}
			continue
		}
		if e.StateKeyOr() != "" {
			continue
		}
		switch e.Type {
		case "m.room.name":
			p.Name = str(e, "content.name")
		case "m.room.topic":
			p.Topic = str(e, "content.topic")
		case "m.room.canonical_alias":
			p.CanonicalAlias = str(e, "content.alias")
		case "m.room.avatar":
			p.AvatarURL = str(e, "content.url")
		case "m.room.join_rules":
			p.JoinRule = str(e, "content.join_rule")
		case "m.room.create":
			p.RoomType = str(e, "content.type")
		case "m.room.history_visibility":
			p.WorldReadable = str(e, "content.history_visibility") == "world_readable"
		case "m.room.guest_access":
			p.GuestCanJoin = str(e, "content.guest_access") == "can_join"
		}
	}
	return p
}

// publicRooms is the unauthenticated GET form of the directory.
func (a *API) publicRooms(w http.ResponseWriter, r *http.Request) error {
	limit, err := parseLimit(r, defaultPublicRoomsLimit, maxPublicRoomsLimit)
	if err != nil {
		return err
	}
	return a.listPublicRooms(w, r, limit, r.URL.Query().Get("since"), publicRoomsFilter{})
}

// publicRoomsSearch is the POST form, with a filter.
func (a *API) publicRoomsSearch(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Limit  int               `json:"limit"`
		Since  string            `json:"since"`
		Filter publicRoomsFilter `json:"filter"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	return a.listPublicRooms(w, r, req.Limit, req.Since, req.Filter)
}

// listPublicRooms pages through published rooms in room ID order; the
// pagination token is the last room ID returned.
func (a *API) listPublicRooms(w http.ResponseWriter, r *http.Request, limit int, since string, f publicRoomsFilter) error {
	if server := r.URL.Query().Get("server"); server != "" && server != a.cfg.ServerName {
		return apierr.InvalidParam("Parley can only list the rooms of " + a.cfg.ServerName)
	}
	if limit <= 0 {
		limit = defaultPublicRoomsLimit
	}
	limit = min(limit, maxPublicRoomsLimit)
	ctx := r.Context()
	chunk := []publicRoom{}
	cursor, next, scanned := since, "", 0
scan:
	for scanned < maxDirectoryScan {
		page := limit + 1
		ids, err := a.store.PublishedRooms(ctx, cursor, page)
		if err != nil {
			return err
		}
		state, err := a.store.CurrentStateOf(ctx, ids)
		if err != nil {
			return err
		}
		byRoom := map[string][]storage.Event{}
		for _, e := range state {
			byRoom[e.RoomID] = append(byRoom[e.RoomID], e)
		}
		for _, id := range ids {
			scanned++
			cursor = id
			p := summarizeRoom(id, byRoom[id])
			if !f.matches(&p) {
				continue
			}
			if len(chunk) == limit {
				// A further match exists: resume after the last one sent.
				next = chunk[len(chunk)-1].RoomID
				break scan
			}
			chunk = append(chunk, p)
		}
		if len(ids) < page {
			break
		}
		if scanned >= maxDirectoryScan {
			next = cursor // the search stopped early; go on from here
		}
	}
	total, err := a.store.PublishedRooms(ctx, "", maxRoomCountEstimate)
	if err != nil {
		return err
	}
	out := map[string]any{"chunk": chunk, "total_room_count_estimate": len(total)}
	if next != "" {
		out["next_batch"] = next
	}
	return writeJSON(w, out)
}
