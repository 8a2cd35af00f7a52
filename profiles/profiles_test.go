package profiles_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storagetest"
)

// joinedStore is a real store whose joined rooms are given, since writing
// member events needs the room writer.
type joinedStore struct {
	*storage.Store
	joined []storage.Membership
}

func (s *joinedStore) UserMemberships(_ context.Context, userID, membership string) ([]storage.Membership, error) {
	return s.joined, nil
}

// fakeMembers records the member events a profile change writes.
type fakeMembers struct {
	mu   sync.Mutex
	reqs []rooms.MembershipRequest
	fail string // a room that refuses
}

func (m *fakeMembers) ChangeMembership(_ context.Context, req rooms.MembershipRequest) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.RoomID == m.fail {
		return "", rooms.ErrForbidden
	}
	m.reqs = append(m.reqs, req)
	return "$e", nil
}

func (m *fakeMembers) rooms() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.reqs {
		out = append(out, r.RoomID)
	}
	slices.Sort(out)
	return out
}

func TestCheckValue(t *testing.T) {
	for _, c := range []struct {
		field, value string
		want         error
	}{
		{"displayname", "Alice", nil},
		{"displayname", "", nil},
		{"displayname", strings.Repeat("é", 256), nil},
		{"displayname", strings.Repeat("a", 257), profiles.ErrInvalidParam},
		{"avatar_url", "mxc://x/abc", nil},
		{"avatar_url", "", nil},
		{"avatar_url", "https://x/y.png", profiles.ErrInvalidParam},
		{"avatar_url", "mxc://" + strings.Repeat("a", 1020), profiles.ErrInvalidParam},
	} {
		if err := profiles.CheckValue(c.field, c.value); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("CheckValue(%s, %.20q) = %v, want %v", c.field, c.value, err, c.want)
		}
	}
}

func TestCheckEdit(t *testing.T) {
	for _, c := range []struct {
		caller, target, field string
		want                  error
	}{
		{"@a:x", "@a:x", "displayname", nil},
		{"@a:x", "@a:x", "avatar_url", nil},
		{"@a:x", "@b:x", "displayname", profiles.ErrForbidden},
		// Well-formed keys Parley does not store are forbidden; garbage is invalid.
		{"@a:x", "@a:x", "m.tz", profiles.ErrForbidden},
		{"@a:x", "@a:x", "com.example.field", profiles.ErrForbidden},
		{"@a:x", "@a:x", "org.x_y.z2", profiles.ErrForbidden},
		{"@a:x", "@a:x", "displayname2", profiles.ErrInvalidParam},
		{"@a:x", "@a:x", "", profiles.ErrInvalidParam},
		{"@a:x", "@a:x", "Com.example", profiles.ErrInvalidParam},
		{"@a:x", "@a:x", "com..x", profiles.ErrInvalidParam},
		{"@a:x", "@a:x", "com.", profiles.ErrInvalidParam},
		{"@a:x", "@a:x", "com.ex-ample", profiles.ErrInvalidParam},
	} {
		if err := profiles.CheckEdit(c.caller, c.target, c.field); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("CheckEdit(%s, %s, %q) = %v, want %v", c.caller, c.target, c.field, err, c.want)
		}
	}
}

func TestService(t *testing.T) {
	ctx := context.Background()
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		for _, u := range []storage.User{
			{UserID: "@ann:hs", DisplayName: "Ann", CreatedTS: 1},
			{UserID: "@bob:hs", CreatedTS: 1},
		} {
			if err := st.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		store := &joinedStore{Store: st, joined: []storage.Membership{{RoomID: "!r1:hs"}, {RoomID: "!r2:hs"}, {RoomID: "!gone:hs"}}}
		members := &fakeMembers{fail: "!gone:hs"}
		svc := profiles.New("hs", store, members, nil)

		t.Run("reads", func(t *testing.T) {
			if p, err := svc.Get(ctx, "@ann:hs"); err != nil || p.DisplayName != "Ann" {
				t.Errorf("Get(@ann:hs) = %+v, %v, want Ann", p, err)
			}
			for _, user := range []string{"@nobody:hs", "@ann:elsewhere", "not-a-user"} {
				if _, err := svc.Get(ctx, user); !errors.Is(err, profiles.ErrNotFound) {
					t.Errorf("Get(%s) = %v, want ErrNotFound", user, err)
				}
			}
			if _, err := svc.Field(ctx, "@bob:hs", "displayname"); !errors.Is(err, profiles.ErrNotFound) {
				t.Errorf("Field(unset) = %v, want ErrNotFound", err)
			}
			if _, err := svc.Field(ctx, "@ann:hs", "m.tz"); !errors.Is(err, profiles.ErrNotFound) {
				t.Errorf("Field(m.tz) = %v, want ErrNotFound", err)
			}
		})

		t.Run("refused edits change nothing", func(t *testing.T) {
			for _, c := range []struct {
				caller, target, field, value string
				want                         error
			}{
				{"@bob:hs", "@ann:hs", "displayname", "Mallory", profiles.ErrForbidden},
				{"@ann:hs", "@ann:hs", "avatar_url", "https://x/y", profiles.ErrInvalidParam},
				{"@ann:hs", "@ann:hs", "m.tz", "Europe/Paris", profiles.ErrForbidden},
				{"@ghost:hs", "@ghost:hs", "displayname", "Boo", profiles.ErrNotFound},
			} {
				if err := svc.SetField(ctx, c.caller, c.target, c.field, c.value); !errors.Is(err, c.want) {
					t.Errorf("SetField(%s -> %s %s) = %v, want %v", c.caller, c.target, c.field, err, c.want)
				}
			}
			if p, _ := svc.Get(ctx, "@ann:hs"); p != (profiles.Profile{DisplayName: "Ann"}) {
				t.Errorf("profile after refused edits = %+v, want unchanged", p)
			}
			if got := members.rooms(); len(got) != 0 {
				t.Errorf("member events after refused edits = %v, want none", got)
			}
		})

		t.Run("same value writes no event", func(t *testing.T) {
			if err := svc.SetField(ctx, "@ann:hs", "@ann:hs", "displayname", "Ann"); err != nil {
				t.Fatal(err)
			}
			if got := members.rooms(); len(got) != 0 {
				t.Errorf("member events = %v, want none", got)
			}
		})

		t.Run("change propagates to every joined room", func(t *testing.T) {
			if err := svc.SetField(ctx, "@ann:hs", "@ann:hs", "avatar_url", "mxc://hs/a"); err != nil {
				t.Fatal(err)
			}
			// The refusing room is skipped; the others get the new profile.
			if got, want := members.rooms(), []string{"!r1:hs", "!r2:hs"}; !slices.Equal(got, want) {
				t.Errorf("member events in %v, want %v", got, want)
			}
			for _, r := range members.reqs {
				want := rooms.Profile{DisplayName: "Ann", AvatarURL: "mxc://hs/a"}
				if r.Profile != want || !r.ProfileUpdate || r.Membership != "join" || r.Sender != "@ann:hs" || r.Target != "@ann:hs" {
					t.Errorf("member event request = %+v, want a join by @ann:hs carrying %+v", r, want)
				}
			}
			if p, _ := svc.Get(ctx, "@ann:hs"); p != (profiles.Profile{DisplayName: "Ann", AvatarURL: "mxc://hs/a"}) {
				t.Errorf("profile = %+v, want the new avatar", p)
			}
			// Clearing works too: "" unsets.
			if err := svc.SetField(ctx, "@ann:hs", "@ann:hs", "displayname", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Field(ctx, "@ann:hs", "displayname"); !errors.Is(err, profiles.ErrNotFound) {
				t.Errorf("Field(cleared) = %v, want ErrNotFound", err)
			}
		})

		t.Run("search", func(t *testing.T) {
			if res, limited, err := svc.Search(ctx, "@ann:hs", "   ", 0); err != nil || len(res) != 0 || limited {
				t.Errorf("Search(blank) = %v, %v, %v, want nothing", res, limited, err)
			}
			res, _, err := svc.Search(ctx, "@ann:hs", "bob", 0)
			if err != nil || len(res) != 1 || res[0].UserID != "@bob:hs" {
				t.Errorf("Search(bob) = %+v, %v, want @bob:hs", res, err)
			}
		})
	})
}
