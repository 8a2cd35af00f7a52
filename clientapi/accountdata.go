package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Account data is per-user storage that syncs between the user's devices.
// Writes go through the room writer so they get stream positions and wake
// the user's syncs; reads come straight from the store.

// maxTagBytes is the spec's limit on a room tag's name.
const maxTagBytes = 255

// ownAccountData checks that the path's user is the caller: account data is
// private to its owner.
func ownAccountData(r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("You cannot access another user's account data")
	}
	return nil
}

// accountDataTarget reads and checks the path's room ID (absent for global
// data) and type.
func accountDataTarget(r *http.Request, perRoom bool) (roomID, typ string, err error) {
	if perRoom {
		roomID = param(r, "roomId")
		if !pdu.ValidRoomID(roomID) {
			return "", "", apierr.InvalidParam("Invalid room ID")
		}
	}
	typ = param(r, "type")
	if !pdu.ValidEventType(typ) {
		return "", "", apierr.InvalidParam("Invalid account data type")
	}
	return roomID, typ, nil
}

// serverControlled reports account-data types only the server may write:
// m.fully_read moves with /read_markers, m.push_rules with /pushrules.
func serverControlled(typ string) bool {
	return typ == "m.fully_read" || typ == "m.push_rules"
}

func (a *API) getAccountData(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.readAccountData(w, r, s, false)
}

func (a *API) getRoomAccountData(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.readAccountData(w, r, s, true)
}

func (a *API) putAccountData(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.writeAccountData(w, r, s, false)
}

func (a *API) putRoomAccountData(w http.ResponseWriter, r *http.Request, s *session) error {
	return a.writeAccountData(w, r, s, true)
}

func (a *API) readAccountData(w http.ResponseWriter, r *http.Request, s *session, perRoom bool) error {
	if err := ownAccountData(r, s); err != nil {
		return err
	}
	roomID, typ, err := accountDataTarget(r, perRoom)
	if err != nil {
		return err
	}
	if !perRoom && typ == "m.push_rules" {
		// The push rules live in their own document; render them as the
		// account-data event that carries them in /sync.
		rs, err := a.pushRules.Ruleset(r.Context(), s.UserID)
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]any{"global": rs})
	}
	content, err := a.store.GetAccountData(r.Context(), s.UserID, roomID, typ)
	if errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Account data not found")
	}
	if err != nil {
		return err
	}
	return writeRaw(w, []byte(content))
}

func (a *API) writeAccountData(w http.ResponseWriter, r *http.Request, s *session, perRoom bool) error {
	if err := ownAccountData(r, s); err != nil {
		return err
	}
	roomID, typ, err := accountDataTarget(r, perRoom)
	if err != nil {
		return err
	}
	if serverControlled(typ) {
		return apierr.New(http.StatusMethodNotAllowed, "M_BAD_JSON", "Cannot set "+typ+" through this API")
	}
	content, err := a.readObject(r)
	if err != nil {
		return err
	}
	if err := a.rooms.PutAccountData(r.Context(), s.UserID, roomID, typ, content); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// Room tags are the room account data of type m.tag, whose content is
// {"tags": {name: {"order": n}, ...}}.

// roomTags loads a room's tags; none stored means none set.
func (a *API) roomTags(ctx context.Context, userID, roomID string) (map[string]json.RawMessage, error) {
	content, err := a.store.GetAccountData(ctx, userID, roomID, "m.tag")
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseTags(content), nil
}

// parseTags reads m.tag content. Content that is not the expected shape
// (written by an old client through the generic endpoint) counts as no tags
// rather than locking the user out of tagging the room.
func parseTags(content string) map[string]json.RawMessage {
	var c struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	if json.Unmarshal([]byte(content), &c) != nil || c.Tags == nil {
		return map[string]json.RawMessage{}
	}
	for name, tag := range c.Tags {
		var obj map[string]json.RawMessage
		if json.Unmarshal(tag, &obj) != nil || obj == nil {
			delete(c.Tags, name)
		}
	}
	return c.Tags
}

// tagTarget checks the path of a tag request and returns its room.
func tagTarget(r *http.Request, s *session) (string, error) {
	if err := ownAccountData(r, s); err != nil {
		return "", err
	}
	roomID := param(r, "roomId")
	if !pdu.ValidRoomID(roomID) {
		return "", apierr.InvalidParam("Invalid room ID")
	}
	return roomID, nil
}

func (a *API) getTags(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID, err := tagTarget(r, s)
	if err != nil {
		return err
	}
	tags, err := a.roomTags(r.Context(), s.UserID, roomID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"tags": tags})
}

// putTag adds or replaces one tag. The body is kept whole, so fields beyond
// order survive for the clients that use them.
func (a *API) putTag(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID, err := tagTarget(r, s)
	if err != nil {
		return err
	}
	tag := param(r, "tag")
	if tag == "" || len(tag) > maxTagBytes {
		return apierr.InvalidParam("A tag name must be 1 to 255 bytes")
	}
	body, err := a.readObject(r)
	if err != nil {
		return err
	}
	var fields struct {
		Order *json.RawMessage `json:"order"`
	}
	_ = json.Unmarshal(body, &fields)
	if fields.Order != nil {
		var order float64
		if json.Unmarshal(*fields.Order, &order) != nil {
			return apierr.BadJSON("order must be a number")
		}
	}
	return a.updateTags(w, r, s.UserID, roomID, func(tags map[string]json.RawMessage) bool {
		tags[tag] = body
		return true
	})
}

// deleteTag removes one tag; removing a tag that is not there succeeds.
func (a *API) deleteTag(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID, err := tagTarget(r, s)
	if err != nil {
		return err
	}
	tag := param(r, "tag")
	return a.updateTags(w, r, s.UserID, roomID, func(tags map[string]json.RawMessage) bool {
		_, had := tags[tag]
		delete(tags, tag)
		return had
	})
}

// updateTags is a read-modify-write of m.tag. Two concurrent tag changes
// on one room by one user can lose one of them; clients tag one room at a
// time, and the next change repairs it. change reports whether it changed
// anything; no change writes nothing, so syncs are not woken for nothing.
func (a *API) updateTags(w http.ResponseWriter, r *http.Request, userID, roomID string, change func(map[string]json.RawMessage) bool) error {
	ctx := r.Context()
	tags, err := a.roomTags(ctx, userID, roomID)
	if err != nil {
		return err
	}
	if !change(tags) {
		return writeJSON(w, emptyObject)
	}
	content, err := json.Marshal(map[string]any{"tags": tags})
	if err != nil {
		return err
	}
	if err := a.rooms.PutAccountData(ctx, userID, roomID, "m.tag", content); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}
