package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Profile limits. Synapse's are the de facto ones clients expect: a display
// name of 256 characters and an avatar URL of about a kilobyte.
const (
	maxDisplayNameChars = 256
	maxAvatarURLBytes   = 1024
	// profileFanout bounds concurrent member-event writes when a profile
	// change is copied into every joined room; concurrent writes share
	// commits in the room writer.
	profileFanout = 8

	defaultUserSearchLimit = 10
	maxUserSearchLimit     = 50
)

// localUser loads a local, active account for the profile endpoints. A
// remote or unknown user is "not found": there is no federation to ask.
func (a *API) localUser(ctx context.Context, userID string) (storage.User, error) {
	if !pdu.ValidUserID(userID) || pdu.Domain(userID) != a.cfg.ServerName {
		return storage.User{}, apierr.NotFound("Profile not found")
	}
	u, err := a.store.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return storage.User{}, apierr.NotFound("Profile not found")
	}
	return u, err
}

// getProfile returns a user's whole profile; unset fields are left out.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	u, err := a.localUser(r.Context(), param(r, "userId"))
	if err != nil {
		return err
	}
	out := map[string]string{}
	if u.DisplayName != "" {
		out["displayname"] = u.DisplayName
	}
	if u.AvatarURL != "" {
		out["avatar_url"] = u.AvatarURL
	}
	return writeJSON(w, out)
}

// getProfileField returns one field. A field that is unset, or that Parley
// does not keep, is a 404 as the spec has it.
func (a *API) getProfileField(w http.ResponseWriter, r *http.Request) error {
	field := param(r, "field")
	u, err := a.localUser(r.Context(), param(r, "userId"))
	if err != nil {
		return err
	}
	value := ""
	switch field {
	case "displayname":
		value = u.DisplayName
	case "avatar_url":
		value = u.AvatarURL
	}
	if value == "" {
		return apierr.NotFound("Profile field " + field + " is not set")
	}
	return writeJSON(w, map[string]string{field: value})
}

// putProfileField sets the display name or avatar URL, then copies the new
// profile into the user's member event in every joined room, which is how
// other members see it.
func (a *API) putProfileField(w http.ResponseWriter, r *http.Request, s *session) error {
	userID, field := param(r, "userId"), param(r, "field")
	if userID != s.UserID {
		return apierr.Forbidden("You cannot change another user's profile")
	}
	// Newer specs allow m.tz and custom fields; Parley advertises v1.12,
	// which has only these two.
	if field != "displayname" && field != "avatar_url" {
		if validProfileKey(field) {
			return apierr.Forbidden("Parley does not store the profile field " + field)
		}
		return apierr.InvalidParam("Invalid profile key")
	}
	var body map[string]json.RawMessage
	if err := a.readJSON(r, &body); err != nil {
		return err
	}
	raw, ok := body[field]
	if !ok {
		return apierr.MissingParam("Missing key " + field)
	}
	value, err := profileValue(field, raw)
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, err := a.localUser(ctx, s.UserID)
	if err != nil {
		return err
	}
	profile := rooms.Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
	if field == "displayname" {
		if profile.DisplayName == value {
			return writeJSON(w, emptyObject)
		}
		profile.DisplayName = value
	} else {
		if profile.AvatarURL == value {
			return writeJSON(w, emptyObject)
		}
		profile.AvatarURL = value
	}
	if err := a.store.SetProfile(ctx, s.UserID, profile.DisplayName, profile.AvatarURL); err != nil {
		return err
	}
	// The change is saved; copying it into the rooms must finish even if
	// the client hangs up now.
	a.propagateProfile(context.WithoutCancel(ctx), s.UserID, profile)
	return writeJSON(w, emptyObject)
}

// profileValue checks a profile field's new value. null and "" both clear
// the field.
func profileValue(field string, raw json.RawMessage) (string, error) {
	if string(raw) == "null" {
		return "", nil
	}
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", apierr.BadJSON(field + " must be a string")
	}
	switch field {
	case "displayname":
		if utf8.RuneCountInString(value) > maxDisplayNameChars {
			return "", apierr.InvalidParam("displayname is longer than 256 characters")
		}
	case "avatar_url":
		if len(value) > maxAvatarURLBytes {
			return "", apierr.InvalidParam("avatar_url is longer than 1024 bytes")
		}
		if value != "" && !strings.HasPrefix(value, "mxc://") {
			return "", apierr.InvalidParam("avatar_url must be an mxc:// URI")
		}
	}
	return value, nil
}

// validProfileKey reports whether key has the shape the spec allows for
// profile keys (m.tz or a namespaced identifier), so a well-formed key
// Parley does not store is told apart from garbage.
func validProfileKey(key string) bool {
	if key == "m.tz" {
		return true
	}
	if len(key) > 255 || !strings.Contains(key, ".") {
		return false
	}
	for _, part := range strings.Split(key, ".") {
		if part == "" || part[0] < 'a' || part[0] > 'z' {
			return false
		}
		for i := 1; i < len(part); i++ {
			c := part[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// propagateProfile sends a fresh join event carrying profile into every
// room the user is joined to. A room that refuses (the user was kicked a
// moment ago, say) is logged and skipped: the profile itself is saved.
func (a *API) propagateProfile(ctx context.Context, userID string, profile rooms.Profile) {
	joined, err := a.store.UserMemberships(ctx, userID, "join")
	if err != nil {
		a.log.Warn("profile update: list joined rooms", "user", userID, "err", err)
		return
	}
	sem := make(chan struct{}, profileFanout)
	var wg sync.WaitGroup
	for _, m := range joined {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := a.rooms.ChangeMembership(ctx, rooms.MembershipRequest{
				RoomID: m.RoomID, Sender: userID, Target: userID, Membership: "join",
				Profile: profile, ProfileUpdate: true,
			})
			if err != nil {
				a.log.Warn("profile update: member event", "user", userID, "room", m.RoomID, "err", err)
			}
		})
	}
	wg.Wait()
}

// userDirectorySearch finds local users by ID or display name, those who
// share a room with the searcher first. A blank term finds nobody rather
// than listing every account.
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
	limit := req.Limit
	if limit <= 0 {
		limit = defaultUserSearchLimit
	}
	limit = min(limit, maxUserSearchLimit)
	results := []map[string]string{}
	term := strings.TrimSpace(*req.SearchTerm)
	if term == "" {
		return writeJSON(w, map[string]any{"results": results, "limited": false})
	}
	users, err := a.store.SearchUsers(r.Context(), s.UserID, term, limit+1)
	if err != nil {
		return err
	}
	limited := len(users) > limit
	if limited {
		users = users[:limit]
	}
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
