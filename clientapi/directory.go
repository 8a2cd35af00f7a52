package clientapi

// The room alias and published room list handlers: parsing and replies.
// The rules (who may add, remove and publish; how the list is searched)
// live in package directory.

import (
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/directory"
)

func (a *API) caller(s *session) directory.Caller {
	return directory.Caller{UserID: s.UserID, Admin: s.IsAdmin}
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	roomID, servers, err := a.directory.Resolve(r.Context(), param(r, "alias"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"room_id": roomID, "servers": servers})
}

// putAlias maps a new alias of this server to a room the caller is joined to.
func (a *API) putAlias(w http.ResponseWriter, r *http.Request, s *session) error {
	alias := param(r, "alias")
	if err := a.directory.CheckAlias(alias, true); err != nil {
		return err
	}
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.directory.PutAlias(r.Context(), a.caller(s), alias, req.RoomID); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.directory.DeleteAlias(r.Context(), a.caller(s), param(r, "alias")); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) getRoomVisibility(w http.ResponseWriter, r *http.Request) error {
	published, err := a.directory.Published(r.Context(), param(r, "roomId"))
	if err != nil {
		return err
	}
	visibility := "private"
	if published {
		visibility = "public"
	}
	return writeJSON(w, map[string]string{"visibility": visibility})
}

// putRoomVisibility publishes or unpublishes a room.
func (a *API) putRoomVisibility(w http.ResponseWriter, r *http.Request, s *session) error {
	roomID := param(r, "roomId")
	if err := directory.CheckRoomID(roomID); err != nil {
		return err
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
	if err := a.directory.SetPublished(r.Context(), a.caller(s), roomID, req.Visibility == "public"); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// publicRooms is the unauthenticated GET form of the directory.
func (a *API) publicRooms(w http.ResponseWriter, r *http.Request) error {
	limit, err := parseLimit(r, directory.DefaultLimit, directory.MaxLimit)
	if err != nil {
		return err
	}
	return a.listPublicRooms(w, r, limit, r.URL.Query().Get("since"), directory.Filter{})
}

// publicRoomsSearch is the POST form, with a filter.
func (a *API) publicRoomsSearch(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Limit  int              `json:"limit"`
		Since  string           `json:"since"`
		Filter directory.Filter `json:"filter"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	return a.listPublicRooms(w, r, req.Limit, req.Since, req.Filter)
}

func (a *API) listPublicRooms(w http.ResponseWriter, r *http.Request, limit int, since string, f directory.Filter) error {
	page, err := a.directory.PublicRooms(r.Context(), r.URL.Query().Get("server"), limit, since, f)
	if err != nil {
		return err
	}
	out := map[string]any{"chunk": page.Rooms, "total_room_count_estimate": page.TotalEstimate}
	if page.Next != "" {
		out["next_batch"] = page.Next
	}
	return writeJSON(w, out)
}
