package homeserver_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeskRenameUpdatesMemberEvents: renaming a desk renames its service
// user through the profiles service, as any profile change goes: the
// profile reads the new name, and so does the service user's member event
// in every open consultation's room, which is where customers see it.
// Before, the rename wrote the profile row alone, and rooms kept the old
// name; and a desk made again on an old ID kept the old name.
func TestDeskRenameUpdatesMemberEvents(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{"name": "Acme"})
			w.agent("a1", map[string]any{})
			cust := w.srv.Register(t, "cust")
			room := w.open(cust, "presale", "hello").Get("room_id").String()
			svc := w.boss.MustDo("GET", w.deskPath(), nil).Get("service_user").String()
			member := func() string {
				return cust.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(svc), nil).Get("displayname").String()
			}
			if got := member(); got != "Acme" {
				t.Fatalf("service user's member displayname before the rename = %q, want Acme", got)
			}

			w.boss.MustDo("PUT", w.deskPath(), map[string]any{"name": "Acme Support"})

			if got := cust.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(svc)+"/displayname", nil).Get("displayname").String(); got != "Acme Support" {
				t.Errorf("service user's profile displayname = %q, want Acme Support", got)
			}
			if got := member(); got != "Acme Support" {
				t.Errorf("service user's member displayname after the rename = %q, want Acme Support", got)
			}

			// A desk made again on the same ID, under another name, renames
			// the service user it takes back.
			w.boss.MustDo("DELETE", w.deskPath(), nil)
			w.boss.MustDo("PUT", w.deskPath(), map[string]any{"name": "Acme Again"})
			if got := cust.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(svc)+"/displayname", nil).Get("displayname").String(); got != "Acme Again" {
				t.Errorf("service user's profile displayname after the desk was made again = %q, want Acme Again", got)
			}
		})
	}
}
