package clientapi

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
)

// Channel likes and comments (package channels owns the rules: blocks,
// comments off, moderation, the per-user comment rate).
func (a *API) mountChannelSocial(r chi.Router) {
	r.Put("/channels/{channelId}/posts/{postId}/likes", a.authed(a.likeChannelPost))
	r.Delete("/channels/{channelId}/posts/{postId}/likes", a.authed(a.unlikeChannelPost))
	r.Post("/channels/{channelId}/posts/{postId}/comments", a.authed(a.commentChannelPost))
	r.Get("/channels/{channelId}/posts/{postId}/comments", a.authed(a.channelComments))
	r.Delete("/channels/{channelId}/posts/{postId}/comments/{commentId}", a.authed(a.deleteChannelComment))
}

func (a *API) likeChannelPost(w http.ResponseWriter, r *http.Request, s *session) error {
	n, err := a.channels.Like(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"))
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, map[string]int64{"like_count": n})
}

func (a *API) unlikeChannelPost(w http.ResponseWriter, r *http.Request, s *session) error {
	n, err := a.channels.Unlike(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"))
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, map[string]int64{"like_count": n})
}

func (a *API) commentChannelPost(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Text string `json:"text"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	c, err := a.channels.Comment(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"), req.Text)
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, c)
}

// channelComments pages a post's comments oldest first; "from" is the
// next_batch of the previous page (the sequence after which to continue).
func (a *API) channelComments(w http.ResponseWriter, r *http.Request, s *session) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	cs, err := a.channels.Comments(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"), after, limit)
	if err != nil {
		return channelErr(err)
	}
	resp := map[string]any{"chunk": cs}
	if len(cs) == limit {
		resp["next_batch"] = strconv.FormatInt(cs[len(cs)-1].Seq, 10)
	}
	return writeJSON(w, resp)
}

func (a *API) deleteChannelComment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.DeleteComment(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"), param(r, "commentId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}
