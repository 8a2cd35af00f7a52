package clientapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/moments"
)

// Moments (朋友圈, issue 12; package moments owns the rules). These
// handlers only parse requests and map errors.
func (a *API) mountMoments(r chi.Router) {
	if a.moments == nil {
		return
	}
	r.Post("/moments", a.authed(a.postMoment))
	r.Get("/moments", a.authed(a.momentsFeed))
	r.Get("/moments/counts", a.authed(a.momentsCounts))
	r.Post("/moments/read", a.authed(a.momentsRead))
	r.Get("/moments/notifications", a.authed(a.momentsNotifications))
	r.Get("/moments/users/{userId}", a.authed(a.userMoments))
	r.Get("/moments/{postId}", a.authed(a.getMoment))
	r.Delete("/moments/{postId}", a.authed(a.deleteMoment))
	r.Put("/moments/{postId}/like", a.authed(a.likeMoment))
	r.Delete("/moments/{postId}/like", a.authed(a.unlikeMoment))
	r.Post("/moments/{postId}/comments", a.authed(a.commentMoment))
	r.Delete("/moments/{postId}/comments/{commentId}", a.authed(a.deleteMomentComment))
}

// momentErr maps the moments package's errors to Matrix errors.
func momentErr(err error) error {
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
	case errors.Is(err, moments.ErrInvalid):
		return apierr.InvalidParam(msg())
	case errors.Is(err, moments.ErrTooLarge):
		return apierr.TooLarge(msg())
	case errors.Is(err, moments.ErrNotFound):
		return apierr.NotFound("No such post or comment")
	case errors.Is(err, moments.ErrForbidden):
		return apierr.Forbidden(msg())
	case errors.Is(err, moments.ErrUnavailable):
		return apierr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "The relationship store is unavailable; nothing was changed, try again later")
	}
	return err
}

type momentReq struct {
	Text       string   `json:"text"`
	Images     []string `json:"images"`
	Visibility string   `json:"visibility"`
	Users      []string `json:"users"`
}

func (a *API) postMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	var req momentReq
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	p, err := a.moments.Post(r.Context(), s.UserID, moments.Draft{Text: req.Text, Images: req.Images,
		Visibility: moments.Visibility(req.Visibility), Users: req.Users})
	if err != nil {
		return momentErr(err)
	}
	return writeJSON(w, p)
}

func writePage(w http.ResponseWriter, pg moments.Page) error {
	if pg.Posts == nil {
		pg.Posts = []moments.Post{}
	}
	resp := map[string]any{"chunk": pg.Posts}
	if pg.Next > 0 {
		resp["next_batch"] = strconv.FormatInt(pg.Next, 10)
	}
	return writeJSON(w, resp)
}

func (a *API) momentsFeed(w http.ResponseWriter, r *http.Request, s *session) error {
	before, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	pg, err := a.moments.Feed(r.Context(), s.UserID, before, limit)
	if err != nil {
		return momentErr(err)
	}
	return writePage(w, pg)
}

func (a *API) userMoments(w http.ResponseWriter, r *http.Request, s *session) error {
	before, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	pg, err := a.moments.UserPosts(r.Context(), s.UserID, param(r, "userId"), before, limit)
	if err != nil {
		return momentErr(err)
	}
	return writePage(w, pg)
}

func (a *API) getMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	p, err := a.moments.Get(r.Context(), s.UserID, param(r, "postId"))
	if err != nil {
		return momentErr(err)
	}
	return writeJSON(w, p)
}

func (a *API) deleteMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.moments.Delete(r.Context(), s.UserID, param(r, "postId")); err != nil {
		return momentErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) likeMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.moments.Like(r.Context(), s.UserID, param(r, "postId")); err != nil {
		return momentErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) unlikeMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.moments.Unlike(r.Context(), s.UserID, param(r, "postId")); err != nil {
		return momentErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) commentMoment(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Text    string `json:"text"`
		ReplyTo string `json:"reply_to"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	c, err := a.moments.Comment(r.Context(), s.UserID, param(r, "postId"), req.Text, req.ReplyTo)
	if err != nil {
		return momentErr(err)
	}
	return writeJSON(w, c)
}

func (a *API) deleteMomentComment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.moments.DeleteComment(r.Context(), s.UserID, param(r, "postId"), param(r, "commentId")); err != nil {
		return momentErr(err)
	}
	return writeJSON(w, struct{}{})
}

func (a *API) momentsNotifications(w http.ResponseWriter, r *http.Request, s *session) error {
	before, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	ns, next, err := a.moments.Notifications(r.Context(), s.UserID, before, limit)
	if err != nil {
		return momentErr(err)
	}
	resp := map[string]any{"chunk": ns}
	if next > 0 {
		resp["next_batch"] = strconv.FormatInt(next, 10)
	}
	return writeJSON(w, resp)
}

func (a *API) momentsCounts(w http.ResponseWriter, r *http.Request, s *session) error {
	c, err := a.moments.Counts(r.Context(), s.UserID)
	if err != nil {
		return momentErr(err)
	}
	return writeJSON(w, c)
}

func (a *API) momentsRead(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Notifications bool `json:"notifications"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if err := a.moments.MarkRead(r.Context(), s.UserID, req.Notifications); err != nil {
		return momentErr(err)
	}
	return writeJSON(w, struct{}{})
}

// MomentsGraph adapts the relationship graph to moments: a user's friends,
// read in pages of 1,000 up to a cap.
func MomentsGraph(g graph.Store) moments.Graph { return momentsGraph{g} }

type momentsGraph struct{ g graph.Store }

func (m momentsGraph) Friends(ctx context.Context, user string, max int) ([]string, error) {
	var out []string
	p := graph.Page{Limit: 1000}
	for len(out) < max {
		ids, next, err := m.g.Friends(ctx, user, p)
		if err != nil {
			if errors.Is(err, graph.ErrUnavailable) {
				return nil, fmt.Errorf("%w: %w", moments.ErrUnavailable, err)
			}
			return nil, err
		}
		out = append(out, ids...)
		if next == "" || len(ids) == 0 {
			break
		}
		p.From = next
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}
