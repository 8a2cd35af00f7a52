package clientapi

// The profile and user directory handlers: parsing and replies only. The
// rules (who may change what, the limits, copying a change into member
// events) live in package profiles.

import (
	"encoding/json"
	"net/http"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/profiles"
)

// getProfile returns a user's whole profile; unset fields are left out.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := a.profiles.Get(r.Context(), param(r, "userId"))
	if err != nil {
		return err
	}
	out := map[string]string{}
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	return writeJSON(w, out)
}

// getProfileField returns one field.
func (a *API) getProfileField(w http.ResponseWriter, r *http.Request) error {
	field := param(r, "field")
	value, err := a.profiles.Field(r.Context(), param(r, "userId"), field)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{field: value})
}

// putProfileField sets the display name or avatar URL.
func (a *API) putProfileField(w http.ResponseWriter, r *http.Request, s *session) error {
	userID, field := param(r, "userId"), param(r, "field")
	// Refuse before reading the body, so a refused edit is refused whatever
	// it carries.
	if err := profiles.CheckEdit(s.UserID, userID, field); err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := a.readJSON(r, &body); err != nil {
		return err
	}
	raw, ok := body[field]
	if !ok {
		return apierr.MissingParam("Missing key " + field)
	}
	// null and "" both clear the field.
	var value string
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &value); err != nil {
			return apierr.BadJSON(field + " must be a string")
		}
	}
	if err := a.profiles.SetField(r.Context(), s.UserID, userID, field, value); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// userDirectorySearch finds local users by ID or display name.
func (a *API) userDirectorySearch(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		SearchTerm *string `json:"search_term"`
		Limit      int     `json:"limit"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.SearchTerm == nil {
		return apierr.MissingParam("search_term is required")
	}
	users, limited, err := a.profiles.Search(r.Context(), s.UserID, *req.SearchTerm, req.Limit)
	if err != nil {
		return err
	}
	results := make([]map[string]string, 0, len(users))
	for _, u := range users {
		res := map[string]string{"user_id": u.UserID}
		if u.DisplayName != "" {
			res["display_name"] = u.DisplayName
		}
		if u.AvatarURL != "" {
			res["avatar_url"] = u.AvatarURL
		}
		results = append(results, res)
	}
	return writeJSON(w, map[string]any{"results": results, "limited": limited})
}
