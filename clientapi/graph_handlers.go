package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/profiles"
)

// mountGraph adds the relationship routes under /_parley/client/v1. Every
// change also becomes a sync notice (graph_notices.go), so all of a user's
// devices learn of it.
func (a *API) mountGraph(r chi.Router) {
	if a.graph == nil {
		return
	}
	r.Put("/follows/{userId}", a.authed(a.follow))
	r.Delete("/follows/{userId}", a.authed(a.unfollow))
	r.Get("/users/{userId}/followers", a.authed(a.listOf(graph.Store.Followers)))
	r.Get("/users/{userId}/following", a.authed(a.listOf(graph.Store.Following)))
	r.Post("/friend_requests", a.authed(a.requestFriend))
	r.Get("/friend_requests", a.authed(a.listRequests))
	r.Post("/friend_requests/{requestId}/{action}", a.authed(a.answerRequest))
	r.Get("/friends", a.authed(a.ownList(graph.Store.Friends)))
	r.Delete("/friends/{userId}", a.authed(a.unfriend))
	r.Get("/friends/mutual/{userId}", a.authed(a.mutualFriends))
	r.Get("/friends/suggestions", a.authed(a.suggestions))
	r.Put("/blocks/{userId}", a.authed(a.block))
	r.Delete("/blocks/{userId}", a.authed(a.unblock))
	r.Get("/blocks", a.authed(a.ownList(graph.Store.Blocked)))
	r.Get("/relationship/{userId}", a.authed(a.relationship))
	r.Get("/privacy", a.authed(a.getPrivacy))
	r.Put("/privacy", a.authed(a.putPrivacy))
}

// graphErr maps the graph's errors to Matrix errors. An unreachable graph
// database is a 503: nothing changed and the client may retry.
func graphErr(err error, blocked string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, graph.ErrBlocked):
		return apierr.Forbidden(blocked)
	case errors.Is(err, graph.ErrSelf):
		return apierr.InvalidParam("You cannot do that to yourself")
	case errors.Is(err, graph.ErrInvalidPage):
		return apierr.InvalidParam("Invalid from token")
	case errors.Is(err, graph.ErrNotFound):
		return apierr.NotFound("No such pending friend request")
	case errors.Is(err, graph.ErrUnavailable):
		return apierr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "The relationship store is unavailable; nothing was changed, try again later")
	}
	return err
}

// targetUser reads {userId} and checks it names a local account.
func (a *API) targetUser(r *http.Request) (string, error) {
	return a.graphUser(r.Context(), param(r, "userId"))
}

// graphUser checks userID names an active local account: relationships are
// between accounts of this server.
func (a *API) graphUser(ctx context.Context, userID string) (string, error) {
	if userID == "" {
		return "", apierr.MissingParam("Missing user_id")
	}
	if _, err := a.profiles.Get(ctx, userID); err != nil {
		if errors.Is(err, profiles.ErrNotFound) {
			return "", apierr.NotFound("Unknown user " + userID)
		}
		return "", err
	}
	return userID, nil
}

// page reads from and limit; limit is 1..1000, default 100.
func page(r *http.Request) (graph.Page, error) {
	p := graph.Page{From: r.URL.Query().Get("from"), Limit: 100}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return p, apierr.InvalidParam("limit must be an integer from 1 to 1000")
		}
		p.Limit = n
	}
	return p, nil
}

type userEntry struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// writeUsers answers a page of users with their profiles.
func (a *API) writeUsers(w http.ResponseWriter, ctx context.Context, ids []string, next string) error {
	profiles, err := a.store.Profiles(ctx, ids)
	if err != nil {
		return err
	}
	chunk := make([]userEntry, 0, len(ids))
	for _, id := range ids {
		p := profiles[id]
		chunk = append(chunk, userEntry{UserID: id, DisplayName: p.DisplayName, AvatarURL: p.AvatarURL})
	}
	out := map[string]any{"chunk": chunk}
	if next != "" {
		out["next_batch"] = next
	}
	return writeJSON(w, out)
}

type listFunc func(graph.Store, context.Context, string, graph.Page) ([]string, string, error)

// listOf serves a user's followers or following: public to every signed-in
// user, except one the user has blocked.
func (a *API) listOf(list listFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		user, err := a.targetUser(r)
		if err != nil {
			return err
		}
		p, err := page(r)
		if err != nil {
			return err
		}
		ctx := r.Context()
		if user != s.UserID {
			rel, err := a.graph.Relationship(ctx, s.UserID, user)
			if err != nil {
				return graphErr(err, "")
			}
			if rel.BlockedBy {
				return apierr.Forbidden("This user's connections are not visible to you")
			}
		}
		ids, next, err := list(a.graph, ctx, user, p)
		if err != nil {
			return graphErr(err, "")
		}
		return a.writeUsers(w, ctx, ids, next)
	}
}

// ownList serves one of the caller's own lists (friends, blocks).
func (a *API) ownList(list listFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		p, err := page(r)
		if err != nil {
			return err
		}
		ids, next, err := list(a.graph, r.Context(), s.UserID, p)
		if err != nil {
			return graphErr(err, "")
		}
		return a.writeUsers(w, r.Context(), ids, next)
	}
}

func (a *API) follow(w http.ResponseWriter, r *http.Request, s *session) error {
	to, err := a.targetUser(r)
	if err != nil {
		return err
	}
	changed, err := a.graph.Follow(r.Context(), s.UserID, to)
	if err != nil {
		return graphErr(err, "You cannot follow this user")
	}
	if changed {
		if err := a.noticeFollow(r.Context(), s.UserID, to, true); err != nil {
			return err
		}
	}
	return writeJSON(w, struct{}{})
}

func (a *API) unfollow(w http.ResponseWriter, r *http.Request, s *session) error {
	to, err := a.targetUser(r)
	if err != nil {
		return err
	}
	changed, err := a.graph.Unfollow(r.Context(), s.UserID, to)
	if err != nil {
		return graphErr(err, "")
	}
	if changed {
		if err := a.noticeFollow(r.Context(), s.UserID, to, false); err != nil {
			return err
		}
	}
	return writeJSON(w, struct{}{})
}

func (a *API) requestFriend(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		UserID  string `json:"user_id"`
		Message string `json:"message"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if len(req.Message) > 1000 {
		return apierr.InvalidParam("message is longer than 1000 bytes")
	}
	to, err := a.graphUser(r.Context(), req.UserID)
	if err != nil {
		return err
	}
	out, err := a.graph.RequestFriend(r.Context(), s.UserID, to, req.Message, time.Now().UnixMilli())
	if err != nil {
		return graphErr(err, "You cannot send this user a friend request")
	}
	if out.Changed {
		if err := a.noticeRequest(r.Context(), out.Request); err != nil {
			return err
		}
		if out.Friends {
			if err := a.noticeFriendship(r.Context(), s.UserID, to, true); err != nil {
				return err
			}
		}
	}
	state := "pending"
	if out.Friends {
		state = "friends"
	}
	return writeJSON(w, map[string]string{"request_id": out.Request.ID, "state": state})
}

func (a *API) listRequests(w http.ResponseWriter, r *http.Request, s *session) error {
	dir := graph.DirIn
	switch r.URL.Query().Get("dir") {
	case "", "in":
	case "out":
		dir = graph.DirOut
	default:
		return apierr.InvalidParam("dir must be in or out")
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	reqs, next, err := a.graph.Requests(r.Context(), s.UserID, dir, p)
	if err != nil {
		return graphErr(err, "")
	}
	if reqs == nil {
		reqs = []graph.Request{}
	}
	out := map[string]any{"chunk": reqs}
	if next != "" {
		out["next_batch"] = next
	}
	return writeJSON(w, out)
}

func (a *API) answerRequest(w http.ResponseWriter, r *http.Request, s *session) error {
	id, ctx := param(r, "requestId"), r.Context()
	var (
		req graph.Request
		err error
	)
	switch param(r, "action") {
	case "accept":
		req, err = a.graph.Accept(ctx, id, s.UserID)
	case "decline":
		req, err = a.graph.Decline(ctx, id, s.UserID)
	case "cancel":
		req, err = a.graph.Cancel(ctx, id, s.UserID)
	default:
		return apierr.Unrecognized("Unrecognized request")
	}
	if err != nil {
		return graphErr(err, "You cannot answer this request")
	}
	if err := a.noticeRequest(ctx, req); err != nil {
		return err
	}
	if req.State == "accepted" {
		if err := a.noticeFriendship(ctx, req.From, req.To, true); err != nil {
			return err
		}
	}
	return writeJSON(w, req)
}

func (a *API) unfriend(w http.ResponseWriter, r *http.Request, s *session) error {
	other, err := a.targetUser(r)
	if err != nil {
		return err
	}
	changed, err := a.graph.Unfriend(r.Context(), s.UserID, other)
	if err != nil {
		return graphErr(err, "")
	}
	if changed {
		if err := a.noticeFriendship(r.Context(), s.UserID, other, false); err != nil {
			return err
		}
	}
	return writeJSON(w, struct{}{})
}

func (a *API) mutualFriends(w http.ResponseWriter, r *http.Request, s *session) error {
	other, err := a.targetUser(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	ids, next, err := a.graph.MutualFriends(r.Context(), s.UserID, other, p)
	if err != nil {
		return graphErr(err, "")
	}
	return a.writeUsers(w, r.Context(), ids, next)
}

func (a *API) suggestions(w http.ResponseWriter, r *http.Request, s *session) error {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return apierr.InvalidParam("limit must be an integer from 1 to 100")
		}
		limit = n
	}
	sugg, err := a.graph.Suggestions(r.Context(), s.UserID, limit)
	if err != nil {
		return graphErr(err, "")
	}
	type entry struct {
		userEntry
		MutualFriends int `json:"mutual_friends"`
	}
	ids := make([]string, len(sugg))
	for i, sg := range sugg {
		ids[i] = sg.UserID
	}
	profiles, err := a.store.Profiles(r.Context(), ids)
	if err != nil {
		return err
	}
	chunk := make([]entry, 0, len(sugg))
	for _, sg := range sugg {
		p := profiles[sg.UserID]
		chunk = append(chunk, entry{userEntry{sg.UserID, p.DisplayName, p.AvatarURL}, sg.MutualFriends})
	}
	return writeJSON(w, map[string]any{"chunk": chunk})
}

func (a *API) block(w http.ResponseWriter, r *http.Request, s *session) error {
	other, err := a.targetUser(r)
	if err != nil {
		return err
	}
	eff, err := a.graph.Block(r.Context(), s.UserID, other)
	if err != nil {
		return graphErr(err, "")
	}
	if a.channels != nil { // a block ends follows of each other's channels
		if err := a.channels.Blocked(r.Context(), s.UserID, other); err != nil {
			return channelErr(err)
		}
	}
	if err := a.noticeBlock(r.Context(), s.UserID, other, true, eff); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

func (a *API) unblock(w http.ResponseWriter, r *http.Request, s *session) error {
	other, err := a.targetUser(r)
	if err != nil {
		return err
	}
	changed, err := a.graph.Unblock(r.Context(), s.UserID, other)
	if err != nil {
		return graphErr(err, "")
	}
	if changed {
		if err := a.noticeBlock(r.Context(), s.UserID, other, false, graph.BlockEffects{}); err != nil {
			return err
		}
	}
	return writeJSON(w, struct{}{})
}

func (a *API) relationship(w http.ResponseWriter, r *http.Request, s *session) error {
	other, err := a.targetUser(r)
	if err != nil {
		return err
	}
	rel, err := a.graph.Relationship(r.Context(), s.UserID, other)
	if err != nil {
		return graphErr(err, "")
	}
	return writeJSON(w, relationshipJSON(rel))
}

// relationshipJSON gives every key, with null for no pending request, so a
// client can tell "none" from a field it does not know.
func relationshipJSON(rel graph.Relationship) map[string]any {
	idOrNull := func(id string) any {
		if id == "" {
			return nil
		}
		return id
	}
	return map[string]any{
		"friends": rel.Friends, "following": rel.Following, "followed_by": rel.FollowedBy,
		"blocked": rel.Blocked, "blocked_by": rel.BlockedBy,
		"request_out": idOrNull(rel.RequestOut), "request_in": idOrNull(rel.RequestIn),
		"mutual_friends": rel.MutualFriends,
	}
}

func (a *API) getPrivacy(w http.ResponseWriter, r *http.Request, s *session) error {
	p, err := a.graph.DMPolicy(r.Context(), s.UserID)
	if err != nil {
		return graphErr(err, "")
	}
	return writeJSON(w, map[string]string{"dm_policy": string(p)})
}

func (a *API) putPrivacy(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		DMPolicy string `json:"dm_policy"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	p := graph.DMPolicy(req.DMPolicy)
	if p != graph.DMAnyone && p != graph.DMFriends {
		return apierr.InvalidParam(`dm_policy must be "anyone" or "friends"`)
	}
	if err := a.graph.SetDMPolicy(r.Context(), s.UserID, p); err != nil {
		return graphErr(err, "")
	}
	return writeJSON(w, map[string]string{"dm_policy": string(p)})
}
