// Package profiles owns users' public profiles (display name and avatar
// URL): who may read and change them, the limits on their values, and the
// copying of a change into the user's member event in every joined room.
// The client API and federation (query/profile) both call it. It does no
// HTTP and no JSON parsing of requests.
package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Profile limits. Synapse's are the de facto ones clients expect: a display
// name of 256 characters and an avatar URL of about a kilobyte.
const (
	MaxDisplayNameChars = 256
	MaxAvatarURLBytes   = 1024
	// fanout bounds concurrent member-event writes when a profile change
	// is copied into every joined room; concurrent writes share commits in
	// the room writer.
	fanout = 8

	// DefaultSearchLimit and MaxSearchLimit bound a user directory search.
	DefaultSearchLimit = 10
	MaxSearchLimit     = 50
)

// The profile fields Parley stores.
const (
	FieldDisplayName = "displayname"
	FieldAvatarURL   = "avatar_url"
)

// Store is what the service needs of the database. *storage.Store
// implements it.
type Store interface {
	GetUser(ctx context.Context, userID string) (storage.User, error)
	SetProfile(ctx context.Context, userID, displayName, avatarURL string) error
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)
	SearchUsers(ctx context.Context, searcher, term string, limit int) ([]storage.User, error)
}

// Members writes member events. *rooms.Service implements it.
type Members interface {
	ChangeMembership(ctx context.Context, req rooms.MembershipRequest) (string, error)
}

// Profile is a user's public profile; empty fields are unset.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// Service reads and changes the profiles of this server's users.
type Service struct {
	// Static after New.
	serverName string
	store      Store
	members    Members
	log        *slog.Logger
	// remote answers for other servers' users; nil until SetRemote
	// (remote.go), which runs before the service is used.
	remote *remoteCache
}

// New builds a service for the users of serverName.
func New(serverName string, store Store, members Members, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{serverName: serverName, store: store, members: members, log: log}
}

// errNoProfile answers for remote, unknown and deactivated users alike,
// so the answer does not tell them apart.
var errNoProfile = fail(ErrNotFound, "Profile not found")

// localUser loads a local, active account. A remote user is "not found":
// there is no federation to ask.
func (s *Service) localUser(ctx context.Context, userID string) (storage.User, error) {
	if !pdu.ValidUserID(userID) || pdu.Domain(userID) != s.serverName {
		return storage.User{}, errNoProfile
	}
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return storage.User{}, errNoProfile
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("load profile of %s: %w", userID, err)
	}
	return u, nil
}

// Get returns a user's whole profile: a local user's from the store,
// another server's user's from that server (see SetRemote).
func (s *Service) Get(ctx context.Context, userID string) (Profile, error) {
	if s.isRemote(userID) {
		return s.remote.get(ctx, userID)
	}
	u, err := s.localUser(ctx, userID)
	if err != nil {
		return Profile{}, err
	}
	return Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}, nil
}

// Field returns one field of a local user's profile. A field that is
// unset, or that Parley does not keep, is ErrNotFound, as the spec has it.
func (s *Service) Field(ctx context.Context, userID, field string) (string, error) {
	p, err := s.Get(ctx, userID)
	if err != nil {
		return "", err
	}
	value := ""
	switch field {
	case FieldDisplayName:
		value = p.DisplayName
	case FieldAvatarURL:
		value = p.AvatarURL
	}
	if value == "" {
		return "", fail(ErrNotFound, "Profile field "+field+" is not set")
	}
	return value, nil
}

// CheckEdit decides whether caller may set field of target's profile,
// before anything else is read: only one's own profile, and only the
// fields Parley stores. SetField applies it too; the client API also
// calls it first, so that a refused edit is refused whatever its body.
func CheckEdit(caller, target, field string) error {
	if caller != target {
		return fail(ErrForbidden, "You cannot change another user's profile")
	}
	// Newer specs allow m.tz and custom fields; Parley advertises v1.12,
	// which has only these two.
	if field != FieldDisplayName && field != FieldAvatarURL {
		if validKey(field) {
			return fail(ErrForbidden, "Parley does not store the profile field "+field)
		}
		return fail(ErrInvalidParam, "Invalid profile key")
	}
	return nil
}

// CheckValue checks a new value of field; "" clears the field.
func CheckValue(field, value string) error {
	switch field {
	case FieldDisplayName:
		if utf8.RuneCountInString(value) > MaxDisplayNameChars {
			return fail(ErrInvalidParam, "displayname is longer than 256 characters")
		}
	case FieldAvatarURL:
		if len(value) > MaxAvatarURLBytes {
			return fail(ErrInvalidParam, "avatar_url is longer than 1024 bytes")
		}
		if value != "" && !strings.HasPrefix(value, "mxc://") {
			return fail(ErrInvalidParam, "avatar_url must be an mxc:// URI")
		}
	}
	return nil
}

// SetField sets caller's field to value ("" clears it), then copies the
// new profile into caller's member event in every joined room, which is
// how other members see it. Setting the value a field already has changes
// nothing and writes no event. Once the profile is saved, the copying
// runs to its end even if ctx is cancelled.
func (s *Service) SetField(ctx context.Context, caller, target, field, value string) error {
	if err := CheckEdit(caller, target, field); err != nil {
		return err
	}
	if err := CheckValue(field, value); err != nil {
		return err
	}
	u, err := s.localUser(ctx, caller)
	if err != nil {
		return err
	}
	p := rooms.Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
	old := p
	if field == FieldDisplayName {
		p.DisplayName = value
	} else {
		p.AvatarURL = value
	}
	if p == old {
		return nil
	}
	if err := s.store.SetProfile(ctx, caller, p.DisplayName, p.AvatarURL); err != nil {
		return fmt.Errorf("save profile of %s: %w", caller, err)
	}
	s.propagate(context.WithoutCancel(ctx), caller, p)
	return nil
}

// validKey reports whether key has the shape the spec allows for profile
// keys (m.tz or a namespaced identifier), so a well-formed key Parley does
// not store is told apart from garbage.
func validKey(key string) bool {
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

// propagate sends a fresh join event carrying profile into every room the
// user is joined to. A room that refuses (the user was kicked a moment
// ago, say) is logged and skipped: the profile itself is saved.
func (s *Service) propagate(ctx context.Context, userID string, profile rooms.Profile) {
	joined, err := s.store.UserMemberships(ctx, userID, "join")
	if err != nil {
		s.log.Warn("profile update: list joined rooms", "user", userID, "err", err)
		return
	}
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for _, m := range joined {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := s.members.ChangeMembership(ctx, rooms.MembershipRequest{
				RoomID: m.RoomID, Sender: userID, Target: userID, Membership: "join",
				Profile: profile, ProfileUpdate: true,
			})
			if err != nil {
				s.log.Warn("profile update: member event", "user", userID, "room", m.RoomID, "err", err)
			}
		})
	}
	wg.Wait()
}

// SearchResult is one user a directory search found.
type SearchResult struct {
	UserID string
	Profile
}

// Search finds local users by ID or display name, those who share a room
// with searcher first. limit <= 0 means DefaultSearchLimit; it is capped
// at MaxSearchLimit. A blank term finds nobody rather than listing every
// account. limited reports that more users matched.
func (s *Service) Search(ctx context.Context, searcher, term string, limit int) (results []SearchResult, limited bool, err error) {
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	term = strings.TrimSpace(term)
	if term == "" {
		return nil, false, nil
	}
	users, err := s.store.SearchUsers(ctx, searcher, term, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("search users: %w", err)
	}
	if limited = len(users) > limit; limited {
		users = users[:limit]
	}
	results = make([]SearchResult, len(users))
	for i, u := range users {
		results[i] = SearchResult{UserID: u.UserID, Profile: Profile{DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}}
	}
	return results, limited, nil
}
