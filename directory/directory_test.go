package directory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storagetest"
)

// roomStore is a real store with given current state, since writing
// state needs the room writer.
type roomStore struct {
	*storage.Store
	state map[string][]storage.Event
}

func (s *roomStore) CurrentState(_ context.Context, roomID string) ([]storage.Event, error) {
	return s.state[roomID], nil
}

// joined is who is joined where.
type joined map[[2]string]bool

func (j joined) Joined(_ context.Context, roomID, userID string) (bool, error) {
	return j[[2]string{roomID, userID}], nil
}

func state(typ, sender, client string) storage.Event {
	key := ""
	return storage.Event{Type: typ, StateKey: &key, Sender: sender, Client: []byte(client)}
}

func v11Create(creator string) storage.Event {
	return state("m.room.create", creator, `{"content":{"room_version":"11"}}`)
}

func powerLevels(content string) storage.Event {
	return state("m.room.power_levels", "@admin:hs", `{"content":`+content+`}`)
}

// TestMayEdit pins the directory's power check to the room's power model:
// the level needed for m.room.canonical_alias, with the spec's defaults,
// and a version 12 creator's unlimited power.
func TestMayEdit(t *testing.T) {
	ctx := context.Background()
	rooms := map[string][]storage.Event{
		"!mods:hs":     {v11Create("@admin:hs"), powerLevels(`{"users":{"@mod:hs":50,"@low:hs":49}}`)},
		"!strict:hs":   {v11Create("@admin:hs"), powerLevels(`{"users":{"@mod:hs":50},"state_default":60}`)},
		"!per-type:hs": {v11Create("@admin:hs"), powerLevels(`{"users":{"@mod:hs":50},"state_default":60,"events":{"m.room.canonical_alias":50}}`)},
		"!open:hs":     {v11Create("@admin:hs"), powerLevels(`{"state_default":0}`)},
		"!bad:hs":      {v11Create("@admin:hs"), powerLevels(`{"users":{"@mod:hs":"100"}}`)},
		// Without power levels the creator has 100 and others 0.
		"!nopl:hs": {v11Create("@admin:hs")},
		// Version 12 creators are never in the power levels yet always may.
		"!v12:hs": {state("m.room.create", "@admin:hs", `{"content":{"room_version":"12","additional_creators":["@co:hs"]}}`),
			powerLevels(`{"users":{"@mod:hs":50}}`)},
	}
	members := joined{}
	for room := range rooms {
		for _, u := range []string{"@admin:hs", "@mod:hs", "@low:hs", "@co:hs", "@anyone:hs"} {
			members[[2]string{room, u}] = true
		}
	}
	members[[2]string{"!mods:hs", "@mod:hs"}] = false // left: power does not count
	members[[2]string{"!mods:hs", "@admin:hs"}] = false
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		svc := directory.New("hs", &roomStore{Store: st, state: rooms}, members)
		for _, c := range []struct {
			room, user string
			want       bool
		}{
			{"!mods:hs", "@low:hs", false},
			{"!mods:hs", "@mod:hs", false}, // not joined
			{"!strict:hs", "@mod:hs", false},
			{"!per-type:hs", "@mod:hs", true},
			{"!open:hs", "@anyone:hs", true},
			{"!bad:hs", "@mod:hs", false},
			{"!nopl:hs", "@admin:hs", true},
			{"!nopl:hs", "@anyone:hs", false},
			{"!v12:hs", "@admin:hs", true},
			{"!v12:hs", "@co:hs", true},
			{"!v12:hs", "@mod:hs", true},
			{"!v12:hs", "@anyone:hs", false},
		} {
			if got, err := svc.MayEdit(ctx, c.room, c.user); err != nil || got != c.want {
				t.Errorf("MayEdit(%s, %s) = %v, %v, want %v", c.room, c.user, got, err, c.want)
			}
		}
	})
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	rooms := map[string][]storage.Event{"!r:hs": {v11Create("@owner:hs"), powerLevels(`{"users":{"@owner:hs":100,"@mod:hs":50}}`)}}
	members := joined{{"!r:hs", "@owner:hs"}: true, {"!r:hs", "@mod:hs"}: true, {"!r:hs", "@guest:hs"}: true}
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		svc := directory.New("hs", &roomStore{Store: st, state: rooms}, members)
		guest, mod, outsider := directory.Caller{UserID: "@guest:hs"}, directory.Caller{UserID: "@mod:hs"}, directory.Caller{UserID: "@out:hs"}
		admin := directory.Caller{UserID: "@op:hs", Admin: true}

		for _, c := range []struct {
			name          string
			caller        directory.Caller
			alias, roomID string
			want          error
		}{
			{"malformed alias", guest, "nohash:hs", "!r:hs", directory.ErrInvalidParam},
			{"another server's alias", guest, "#a:elsewhere", "!r:hs", directory.ErrInvalidParam},
			{"no room", guest, "#a:hs", "", directory.ErrMissingParam},
			{"malformed room", guest, "#a:hs", "room", directory.ErrInvalidParam},
			{"not joined", outsider, "#a:hs", "!r:hs", directory.ErrForbidden},
		} {
			if err := svc.PutAlias(ctx, c.caller, c.alias, c.roomID); !errors.Is(err, c.want) {
				t.Errorf("PutAlias(%s) = %v, want %v", c.name, err, c.want)
			}
		}
		for _, alias := range []string{"#g1:hs", "#g2:hs", "#g3:hs"} {
			if err := svc.PutAlias(ctx, guest, alias, "!r:hs"); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.PutAlias(ctx, mod, "#g1:hs", "!r:hs"); !errors.Is(err, directory.ErrAliasExists) {
			t.Errorf("PutAlias(taken) = %v, want ErrAliasExists", err)
		}
		if room, servers, err := svc.Resolve(ctx, "#g1:hs"); err != nil || room != "!r:hs" || len(servers) != 1 || servers[0] != "hs" {
			t.Errorf("Resolve(#g1:hs) = %s %v %v, want !r:hs on hs", room, servers, err)
		}
		for _, alias := range []string{"#none:hs", "#g1:elsewhere"} {
			if _, _, err := svc.Resolve(ctx, alias); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Resolve(%s) = %v, want ErrNotFound", alias, err)
			}
		}

		// The creator, a member with power, or an admin may remove an
		// alias; another member may not.
		if err := svc.DeleteAlias(ctx, directory.Caller{UserID: "@other:hs"}, "#g1:hs"); !errors.Is(err, directory.ErrForbidden) {
			t.Errorf("DeleteAlias(by a stranger) = %v, want ErrForbidden", err)
		}
		for _, c := range []struct {
			caller directory.Caller
			alias  string
		}{{guest, "#g1:hs"}, {mod, "#g2:hs"}, {admin, "#g3:hs"}} {
			if err := svc.DeleteAlias(ctx, c.caller, c.alias); err != nil {
				t.Errorf("DeleteAlias(%s by %s) = %v, want nil", c.alias, c.caller.UserID, err)
			}
		}
		if err := svc.DeleteAlias(ctx, admin, "#g1:hs"); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("DeleteAlias(gone) = %v, want ErrNotFound", err)
		}
		if _, err := svc.RoomAliases(ctx, "@out:hs", "!r:hs"); !errors.Is(err, directory.ErrForbidden) {
			t.Errorf("RoomAliases(outsider) = %v, want ErrForbidden", err)
		}
		if got, err := svc.RoomAliases(ctx, "@guest:hs", "!r:hs"); err != nil || got == nil || len(got) != 0 {
			t.Errorf("RoomAliases = %#v, %v, want an empty list", got, err)
		}
		if _, err := svc.PublicRooms(ctx, "elsewhere", 0, "", directory.Filter{}); !errors.Is(err, directory.ErrInvalidParam) {
			t.Errorf("PublicRooms(another server) = %v, want ErrInvalidParam", err)
		}
		if _, err := svc.Published(ctx, "!unknown:hs"); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Published(unknown room) = %v, want ErrNotFound", err)
		}
	})
}
