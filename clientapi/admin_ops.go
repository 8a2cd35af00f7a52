package clientapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/accounts"
	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/apierr"
)

// The operator API on users, registration tokens and rooms, and its audit
// log (package admin holds the rules). Every route is adminOnly: a server
// admin's token, the same per-device rate limit as every other request.

// newAdmin builds the admin service on the API's parts; nil without a
// store or a room writer (some unit tests build an API without them).
func newAdmin(cfg Config, d Deps, tokens *tokenCache) *admin.Service {
	if d.Store == nil || d.Rooms == nil {
		return nil
	}
	var repo admin.MediaRepo // stays a nil interface without media
	if d.Media != nil {
		repo = d.Media
	}
	return admin.New(admin.Config{
		ServerName: cfg.ServerName, Store: d.Store, Devices: d.Devices, Hasher: d.Hasher, Rooms: d.Rooms,
		Forget:   tokens.dropUser,
		Accounts: d.Store, Deactivator: accounts.NewDeactivator(d.Store, d.Devices, d.Rooms), RoomOps: d.Rooms, Purger: d.Rooms, Media: repo, Notices: d.Store, NoticeRooms: d.Rooms,
	})
}

// mountAdmin adds the admin routes under /_parley/admin/v1.
func (a *API) mountAdmin(r chi.Router) {
	if a.admin == nil {
		return
	}
	r.Get("/audit", a.adminOnly(a.adminAudit))
	r.Get("/users", a.adminOnly(a.adminListUsers))
	r.Post("/users", a.adminOnly(a.adminCreateUser))
	r.Get("/users/{userId}", a.adminOnly(a.adminGetUser))
	r.Post("/users/{userId}/password", a.adminOnly(a.adminResetPassword))
	r.Put("/users/{userId}/admin", a.adminOnly(a.adminSetAdmin))
	r.Get("/users/{userId}/devices", a.adminOnly(a.adminListDevices))
	r.Delete("/users/{userId}/devices/{deviceId}", a.adminOnly(a.adminDeleteDevice))
	r.Get("/registration_tokens", a.adminOnly(a.adminListTokens))
	r.Post("/registration_tokens", a.adminOnly(a.adminCreateToken))
	r.Delete("/registration_tokens/{token}", a.adminOnly(a.adminRevokeToken))
	r.Get("/rooms", a.adminOnly(a.adminListRooms))
	r.Get("/rooms/{roomId}", a.adminOnly(a.adminGetRoom))
	r.Get("/rooms/{roomId}/state", a.adminOnly(a.adminRoomState))
	r.Put("/rooms/{roomId}/block", a.adminOnly(a.adminBlockRoom))
	a.mountAdminLifecycle(r) // admin_lifecycle.go
}

func adminPage(r *http.Request) (admin.Page, error) {
	q := r.URL.Query()
	return admin.ParsePage(q.Get("from"), q.Get("limit"))
}

// listAnswer writes a page of a list as chunk, with next_batch when more
// follow, as Parley's other paged lists do.
func listAnswer(w http.ResponseWriter, items any, next string) error {
	out := map[string]any{"chunk": items}
	if next != "" {
		out["next_batch"] = next
	}
	return writeJSON(w, out)
}

func (a *API) adminAudit(w http.ResponseWriter, r *http.Request, _ *session) error {
	p, err := adminPage(r)
	if err != nil {
		return err
	}
	rows, next, err := a.admin.Audit(r.Context(), r.URL.Query().Get("target"), p)
	if err != nil {
		return err
	}
	return listAnswer(w, rows, next)
}

func (a *API) adminListUsers(w http.ResponseWriter, r *http.Request, _ *session) error {
	p, err := adminPage(r)
	if err != nil {
		return err
	}
	users, next, err := a.admin.Users(r.Context(), r.URL.Query().Get("search"), p)
	if err != nil {
		return err
	}
	return listAnswer(w, users, next)
}

func (a *API) adminCreateUser(w http.ResponseWriter, r *http.Request, s *session) error {
	var req admin.NewUser
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	id, err := a.admin.CreateUser(r.Context(), s.UserID, req)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"user_id": id})
}

func (a *API) adminGetUser(w http.ResponseWriter, r *http.Request, _ *session) error {
	d, err := a.admin.User(r.Context(), param(r, "userId"))
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

func (a *API) adminResetPassword(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		NewPassword   string `json:"new_password"`
		LogoutDevices *bool  `json:"logout_devices"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices // the spec's default for password changes
	if err := a.admin.ResetPassword(r.Context(), s.UserID, param(r, "userId"), req.NewPassword, logout); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) adminSetAdmin(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Admin *bool `json:"admin"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Admin == nil {
		return apierr.MissingParam("admin (true or false) is required")
	}
	if err := a.admin.SetAdmin(r.Context(), s.UserID, param(r, "userId"), *req.Admin); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) adminListDevices(w http.ResponseWriter, r *http.Request, _ *session) error {
	devs, err := a.admin.Devices(r.Context(), param(r, "userId"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"devices": devs})
}

func (a *API) adminDeleteDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.admin.DeleteDevice(r.Context(), s.UserID, param(r, "userId"), param(r, "deviceId")); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) adminListTokens(w http.ResponseWriter, r *http.Request, _ *session) error {
	ts, err := a.admin.Tokens(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"registration_tokens": ts})
}

func (a *API) adminCreateToken(w http.ResponseWriter, r *http.Request, s *session) error {
	var req admin.RegistrationToken
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	t, err := a.admin.CreateToken(r.Context(), s.UserID, req)
	if err != nil {
		return err
	}
	return writeJSON(w, t)
}

func (a *API) adminRevokeToken(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := a.admin.RevokeToken(r.Context(), s.UserID, param(r, "token")); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

func (a *API) adminListRooms(w http.ResponseWriter, r *http.Request, _ *session) error {
	p, err := adminPage(r)
	if err != nil {
		return err
	}
	rooms, next, err := a.admin.Rooms(r.Context(), r.URL.Query().Get("search"), p)
	if err != nil {
		return err
	}
	return listAnswer(w, rooms, next)
}

func (a *API) adminGetRoom(w http.ResponseWriter, r *http.Request, _ *session) error {
	d, err := a.admin.Room(r.Context(), param(r, "roomId"))
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

func (a *API) adminRoomState(w http.ResponseWriter, r *http.Request, _ *session) error {
	st, err := a.admin.State(r.Context(), param(r, "roomId"))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"state": st})
}

func (a *API) adminBlockRoom(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Block *bool `json:"block"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Block == nil {
		return apierr.MissingParam("block (true or false) is required")
	}
	if err := a.admin.BlockRoom(r.Context(), s.UserID, param(r, "roomId"), *req.Block); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"block": *req.Block})
}
