package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// UserSummary is a row of the user list.
type UserSummary struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname"`
	Admin       bool   `json:"admin"`
	Deactivated bool   `json:"deactivated"`
	CreatedTS   int64  `json:"creation_ts"`
	LastSeenTS  int64  `json:"last_seen_ts"`
}

// Users pages through accounts in user ID order; search, if not "", keeps
// those whose ID or display name contains it.
func (s *Service) Users(ctx context.Context, search string, p Page) (users []UserSummary, next string, err error) {
	got, err := s.cfg.Store.ListUsers(ctx, search, p.From, p.Limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(got) > p.Limit {
		got = got[:p.Limit]
		next = got[len(got)-1].UserID
	}
	users = make([]UserSummary, len(got))
	for i, u := range got {
		users[i] = UserSummary{UserID: u.UserID, DisplayName: u.DisplayName, Admin: u.IsAdmin, Deactivated: u.Deactivated, CreatedTS: u.CreatedTS, LastSeenTS: u.LastSeenTS}
	}
	return users, next, nil
}

// Device is a device as the user details show it.
type Device struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name"`
	LastSeenTS  int64  `json:"last_seen_ts"`
	LastSeenIP  string `json:"last_seen_ip"`
	CreatedTS   int64  `json:"creation_ts"`
}

// UserDetails is one account in full.
type UserDetails struct {
	UserSummary
	AvatarURL   string   `json:"avatar_url"`
	Devices     []Device `json:"devices"`
	JoinedRooms []string `json:"joined_rooms"`
}

func (s *Service) getUser(ctx context.Context, userID string) (storage.User, error) {
	u, err := s.cfg.Store.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return u, fail(ErrNotFound, "Unknown user")
	}
	return u, err
}

// User returns one account's details.
func (s *Service) User(ctx context.Context, userID string) (UserDetails, error) {
	u, err := s.getUser(ctx, userID)
	if err != nil {
		return UserDetails{}, err
	}
	devs, err := s.Devices(ctx, userID)
	if err != nil {
		return UserDetails{}, err
	}
	ms, err := s.cfg.Store.UserMemberships(ctx, userID, "join")
	if err != nil {
		return UserDetails{}, err
	}
	d := UserDetails{
		UserSummary: UserSummary{UserID: u.UserID, DisplayName: u.DisplayName, Admin: u.IsAdmin, Deactivated: u.Deactivated, CreatedTS: u.CreatedTS},
		AvatarURL:   u.AvatarURL, Devices: devs, JoinedRooms: make([]string, 0, len(ms)),
	}
	for _, dv := range devs {
		d.LastSeenTS = max(d.LastSeenTS, dv.LastSeenTS)
	}
	for _, m := range ms {
		d.JoinedRooms = append(d.JoinedRooms, m.RoomID)
	}
	return d, nil
}

// Devices lists a user's devices; an unknown user is ErrNotFound.
func (s *Service) Devices(ctx context.Context, userID string) ([]Device, error) {
	if _, err := s.getUser(ctx, userID); err != nil {
		return nil, err
	}
	devs, err := s.cfg.Devices.List(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Device, len(devs))
	for i, d := range devs {
		out[i] = Device{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenTS: d.LastSeenTS, LastSeenIP: d.LastSeenIP, CreatedTS: d.CreatedTS}
	}
	return out, nil
}

// DeleteDevice logs one device out, with its keys.
func (s *Service) DeleteDevice(ctx context.Context, actor, userID, deviceID string) error {
	devs, err := s.Devices(ctx, userID)
	if err != nil {
		return err
	}
	found := false
	for _, d := range devs {
		found = found || d.DeviceID == deviceID
	}
	if !found {
		return fail(ErrNotFound, "Unknown device")
	}
	forget := func(id string) { s.cfg.Forget(userID, id) }
	if err := s.cfg.Devices.Delete(ctx, userID, []string{deviceID}, forget); err != nil {
		return err
	}
	return s.audit(ctx, actor, "user.device.delete", userID, map[string]any{"device_id": deviceID})
}

// NewUser is a create request.
type NewUser struct {
	// UserID is a full user ID on this server or a bare localpart.
	UserID      string `json:"user_id"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	DisplayName string `json:"displayname"`
}

// MaxDisplayNameBytes bounds a display name given at creation, as the
// profile API does.
const MaxDisplayNameBytes = 256

// CreateUser makes an account and returns its user ID. An empty password
// gets a random one (the account can only log in after a reset).
func (s *Service) CreateUser(ctx context.Context, actor string, nu NewUser) (string, error) {
	if nu.UserID == "" {
		return "", fail(ErrMissingParam, "user_id is required")
	}
	userID, local, err := s.qualify(nu.UserID)
	if err != nil {
		return "", err
	}
	if len(nu.Password) > MaxPasswordBytes {
		return "", fail(ErrInvalidParam, "password is too long")
	}
	if len(nu.DisplayName) > MaxDisplayNameBytes {
		return "", fail(ErrInvalidParam, "displayname is too long")
	}
	pw := nu.Password
	if pw == "" {
		pw = randomPassword()
	}
	hash, err := s.cfg.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", err
	}
	name := nu.DisplayName
	if name == "" {
		name = local
	}
	err = s.cfg.Store.CreateUser(ctx, storage.User{UserID: userID, PasswordHash: hash, IsAdmin: nu.Admin, DisplayName: name, CreatedTS: s.cfg.Now().UnixMilli()})
	if errors.Is(err, storage.ErrConflict) {
		return "", fail(ErrUserInUse, "User ID already taken")
	}
	if err != nil {
		return "", err
	}
	return userID, s.audit(ctx, actor, "user.create", userID, map[string]any{"admin": nu.Admin})
}

// qualify turns "alice", "@alice" or "@alice:server" into a user ID on
// this server.
func (s *Service) qualify(name string) (userID, local string, err error) {
	local = strings.ToLower(strings.TrimPrefix(name, "@"))
	if i := strings.IndexByte(local, ':'); i >= 0 {
		if local[i+1:] != s.cfg.ServerName {
			return "", "", fail(ErrInvalidParam, "User ID must be on this server")
		}
		local = local[:i]
	}
	userID = "@" + local + ":" + s.cfg.ServerName
	if !pdu.ValidLocalpart(local) || !pdu.ValidUserID(userID) || len(userID) > 255 {
		return "", "", fail(ErrInvalidParam, "User ID may only contain a-z, 0-9, . _ = - / +")
	}
	return userID, local, nil
}

func randomPassword() string {
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// ResetPassword sets a user's password and, when logoutDevices, logs out
// every device (as a password change on a stolen account should).
func (s *Service) ResetPassword(ctx context.Context, actor, userID, password string, logoutDevices bool) error {
	if password == "" {
		return fail(ErrMissingParam, "new_password is required")
	}
	if len(password) > MaxPasswordBytes {
		return fail(ErrInvalidParam, "new_password is too long")
	}
	if _, err := s.getUser(ctx, userID); err != nil {
		return err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SetPassword(ctx, userID, hash); err != nil {
		return fmt.Errorf("reset password of %s: %w", userID, err)
	}
	if logoutDevices {
		if err := s.cfg.Devices.DeleteAll(ctx, userID, func(id string) { s.cfg.Forget(userID, id) }); err != nil {
			return err
		}
	}
	return s.audit(ctx, actor, "user.password.reset", userID, map[string]any{"logout_devices": logoutDevices})
}

// SetAdmin makes a user a server admin, or not. Cached sessions of the
// user are dropped so the change holds at once.
func (s *Service) SetAdmin(ctx context.Context, actor, userID string, admin bool) error {
	if _, err := s.getUser(ctx, userID); err != nil {
		return err
	}
	if err := s.cfg.Store.SetAdmin(ctx, userID, admin); err != nil {
		return fmt.Errorf("set admin of %s: %w", userID, err)
	}
	s.cfg.Forget(userID, "")
	action := "user.admin.grant"
	if !admin {
		action = "user.admin.revoke"
	}
	return s.audit(ctx, actor, action, userID, nil)
}

// LocalUserID turns "alice", "@alice" or "@alice:server" into a user ID on
// this server, for the parley command's NAME arguments.
func (s *Service) LocalUserID(name string) (string, error) {
	id, _, err := s.qualify(name)
	return id, err
}
