package clientapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/channels"
)

// Broadcast channels (issue 12; package channels owns the rules). These
// handlers only parse requests and map errors.
func (a *API) mountChannels(r chi.Router) {
	if a.channels == nil {
		return
	}
	r.Post("/channels", a.authed(a.createChannel))
	r.Get("/channels/joined", a.authed(a.myChannels))
	r.Get("/channels/{channelId}", a.authed(a.getChannel))
	r.Put("/channels/{channelId}", a.authed(a.updateChannel))
	r.Delete("/channels/{channelId}", a.authed(a.deleteChannel))
	r.Post("/channels/{channelId}/posts", a.authed(a.postChannel))
	r.Get("/channels/{channelId}/posts", a.authed(a.channelPosts))
	r.Put("/channels/{channelId}/posts/{postId}", a.authed(a.editChannelPost))
	r.Delete("/channels/{channelId}/posts/{postId}", a.authed(a.retractChannelPost))
	r.Post("/channels/{channelId}/follow", a.authed(a.followChannel))
	r.Post("/channels/{channelId}/unfollow", a.authed(a.unfollowChannel))
	r.Post("/channels/{channelId}/read", a.authed(a.markChannelRead))
	a.mountChannelSocial(r)
}

// channelErr maps the channels package's errors to Matrix errors.
func channelErr(err error) error {
	msg := func() string {
		s := err.Error()
		if i := strings.Index(s, ": "); i >= 0 {
			s = s[i+2:]
		}
		return s
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, channels.ErrInvalid):
		return apierr.InvalidParam(msg())
	case errors.Is(err, channels.ErrTooLarge):
		return apierr.TooLarge(msg())
	case errors.Is(err, channels.ErrNotFound):
		return apierr.NotFound("No such channel or post")
	case errors.Is(err, channels.ErrForbidden):
		return apierr.Forbidden(msg())
	case errors.Is(err, channels.ErrBlocked):
		return apierr.Forbidden("You cannot follow, read or react to this channel")
	case errors.Is(err, channels.ErrUnavailable):
		return apierr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "The relationship store is unavailable; nothing was changed, try again later")
	}
	return err
}

type channelMetaReq struct {
	Name        *string   `json:"name"`
	AvatarURL   *string   `json:"avatar_url"`
	Description *string   `json:"description"`
	Editors     *[]string `json:"editors"`
	CommentsOff *bool     `json:"comments_off"`
}

func (m channelMetaReq) meta() channels.Meta {
	return channels.Meta{Name: m.Name, AvatarURL: m.AvatarURL, Description: m.Description, Editors: m.Editors, CommentsOff: m.CommentsOff}
}

func (a *API) createChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	var req channelMetaReq
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	c, err := a.channels.Create(r.Context(), s.UserID, req.meta())
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, c)
}

func (a *API) getChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	c, err := a.channels.Get(r.Context(), param(r, "channelId"))
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, c)
}

func (a *API) updateChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	var req channelMetaReq
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	c, err := a.channels.Update(r.Context(), s.UserID, param(r, "channelId"), req.meta())
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, c)
}

func (a *API) deleteChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.Delete(r.Context(), s.UserID, param(r, "channelId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}

type channelPostReq struct {
	Text   string   `json:"text"`
	Images []string `json:"images"`
	Links  []string `json:"links"`
}

func (p channelPostReq) content() channels.Content {
	return channels.Content{Text: p.Text, Images: p.Images, Links: p.Links}
}

func (a *API) postChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	var req channelPostReq
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	p, err := a.channels.Post(r.Context(), s.UserID, param(r, "channelId"), req.content())
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, p)
}

func (a *API) editChannelPost(w http.ResponseWriter, r *http.Request, s *session) error {
	var req channelPostReq
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	p, err := a.channels.Edit(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId"), req.content())
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, p)
}

func (a *API) retractChannelPost(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.Retract(r.Context(), s.UserID, param(r, "channelId"), param(r, "postId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}

// channelPosts pages posts newest first; "from" is the next_batch of the
// previous page (the sequence below which to continue).
func (a *API) channelPosts(w http.ResponseWriter, r *http.Request, s *session) error {
	before, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	ps, err := a.channels.Posts(r.Context(), s.UserID, param(r, "channelId"), before, limit)
	if err != nil {
		return channelErr(err)
	}
	resp := map[string]any{"chunk": ps}
	if len(ps) == limit && ps[len(ps)-1].Seq > 1 {
		resp["next_batch"] = strconv.FormatInt(ps[len(ps)-1].Seq, 10)
	}
	return writeJSON(w, resp)
}

func (a *API) followChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.Follow(r.Context(), s.UserID, param(r, "channelId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) unfollowChannel(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.Unfollow(r.Context(), s.UserID, param(r, "channelId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) myChannels(w http.ResponseWriter, r *http.Request, s *session) error {
	fs, err := a.channels.Mine(r.Context(), s.UserID)
	if err != nil {
		return channelErr(err)
	}
	return writeJSON(w, map[string]any{"channels": fs})
}

func (a *API) markChannelRead(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.channels.MarkRead(r.Context(), s.UserID, param(r, "channelId")); err != nil {
		return channelErr(err)
	}
	return writeJSON(w, struct{}{})
}
