package homeserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// CreateUser makes an account for an operator (parley user add, tests).
func (s *Server) CreateUser(ctx context.Context, name, password string, admin bool) (string, error) {
	local := strings.ToLower(strings.TrimPrefix(name, "@"))
	if i := strings.IndexByte(local, ':'); i >= 0 {
		if local[i+1:] != s.cfg.ServerName {
			return "", fmt.Errorf("user %s is not on this server (%s)", name, s.cfg.ServerName)
		}
		local = local[:i]
	}
	userID := "@" + local + ":" + s.cfg.ServerName
	if !pdu.ValidLocalpart(local) || !pdu.ValidUserID(userID) {
		return "", fmt.Errorf("invalid user name %q: use a-z, 0-9 and . _ = - / +", name)
	}
	hash, err := s.Hasher.Hash(ctx, password)
	if err != nil {
		return "", err
	}
	err = s.Store.CreateUser(ctx, storage.User{UserID: userID, PasswordHash: hash, IsAdmin: admin, DisplayName: local, CreatedTS: time.Now().UnixMilli()})
	if errors.Is(err, storage.ErrConflict) {
		return "", fmt.Errorf("user %s already exists", userID)
	}
	return userID, err
}

// RandomPassword returns a password for accounts created without one.
func RandomPassword() string {
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}
