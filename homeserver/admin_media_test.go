package homeserver_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestAdminMedia: an admin lists a user's uploads with paging, quarantines
// one (nobody may download it, its uploader included, until lifted),
// deletes one and purges by size; the per-user quota refuses an upload
// past it with 403 M_RESOURCE_LIMIT_EXCEEDED and admin_contact, and
// deletions free quota. Non-admins get 403, unknown users and media 404,
// bad paging and an empty purge 400; each change is audited.
func TestAdminMedia(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store, Mutate: func(c *config.Config) {
				c.Media.QuotaBytes = 1000
				c.Media.AdminContact = "mailto:ops@example.org"
			}})
			if _, err := srv.Srv.CreateUser(t.Context(), "boss", "pw-boss", true); err != nil {
				t.Fatal(err)
			}
			boss := srv.Login(t, "boss")
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			upload := func(c *hstest.Client, n int, fill byte) (int, string) {
				st, res := c.Do("POST", "/_matrix/media/v3/upload", bytes.Repeat([]byte{fill}, n))
				if st != 200 {
					return st, res.Raw
				}
				return st, strings.TrimPrefix(res.Get("content_uri").String(), "mxc://localhost/")
			}
			download := func(c *hstest.Client, id string) int {
				st, _ := c.Do("GET", "/_matrix/client/v1/media/download/localhost/"+id, nil)
				return st
			}
			st, small := upload(alice, 300, 'a')
			if st != 200 {
				t.Fatalf("first upload = %d %s", st, small)
			}
			st, big := upload(alice, 600, 'b')
			if st != 200 {
				t.Fatalf("second upload = %d %s", st, big)
			}
			// 900 of 1000 bytes used: 200 more do not fit.
			st, res := alice.Do("POST", "/_matrix/media/v3/upload", bytes.Repeat([]byte{'c'}, 200))
			if st != 403 || res.Get("errcode").String() != "M_RESOURCE_LIMIT_EXCEEDED" || res.Get("admin_contact").String() != "mailto:ops@example.org" {
				t.Errorf("upload past the quota = %d %s, want 403 M_RESOURCE_LIMIT_EXCEEDED with admin_contact", st, res.Raw)
			}
			if st, _ := upload(bob, 600, 'b'); st != 200 { // quotas are per user; same bytes as alice's big one
				t.Errorf("bob's upload = %d, want 200", st)
			}

			a := hstest.Esc(alice.UserID)
			for _, c := range []struct {
				name         string
				cl           *hstest.Client
				method, path string
				body         any
				status       int
				errcode      string
			}{
				{"non-admin list", alice, "GET", "/users/" + a + "/media", nil, 403, "M_FORBIDDEN"},
				{"non-admin delete", alice, "DELETE", "/media/localhost/" + small, nil, 403, "M_FORBIDDEN"},
				{"non-admin quarantine", alice, "PUT", "/media/localhost/" + small + "/quarantine", map[string]any{"quarantine": true}, 403, "M_FORBIDDEN"},
				{"non-admin purge", alice, "POST", "/media/purge", map[string]any{"size_gt": 1}, 403, "M_FORBIDDEN"},
				{"unknown user", boss, "GET", "/users/" + hstest.Esc("@nobody:localhost") + "/media", nil, 404, "M_NOT_FOUND"},
				{"unknown media", boss, "DELETE", "/media/localhost/nope", nil, 404, "M_NOT_FOUND"},
				{"remote media", boss, "DELETE", "/media/elsewhere.org/" + small, nil, 404, "M_NOT_FOUND"},
				{"unknown media quarantine", boss, "PUT", "/media/localhost/nope/quarantine", map[string]any{"quarantine": true}, 404, "M_NOT_FOUND"},
				{"bad limit", boss, "GET", "/users/" + a + "/media?limit=0", nil, 400, "M_INVALID_PARAM"},
				{"bad from", boss, "GET", "/users/" + a + "/media?from=x", nil, 400, "M_INVALID_PARAM"},
				{"purge without criteria", boss, "POST", "/media/purge", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"purge unknown user", boss, "POST", "/media/purge", map[string]any{"user_id": "@nobody:localhost"}, 404, "M_NOT_FOUND"},
				{"quarantine flag missing", boss, "PUT", "/media/localhost/" + small + "/quarantine", map[string]any{}, 400, "M_MISSING_PARAM"},
			} {
				if st, res := c.cl.Do(c.method, adminAPI+c.path, c.body); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}

			page := boss.MustDo("GET", adminAPI+"/users/"+a+"/media?limit=1", nil)
			next := page.Get("next_batch").String()
			rest := boss.MustDo("GET", adminAPI+"/users/"+a+"/media?limit=1&from="+next, nil)
			got := []string{page.Get("chunk.0.media_id").String(), rest.Get("chunk.0.media_id").String()}
			if got[0] != big || got[1] != small || rest.Get("next_batch").Exists() {
				t.Errorf("alice's media pages = %v (next %q), want [%s %s], newest first, two pages", got, rest.Get("next_batch").String(), big, small)
			}

			boss.MustDo("PUT", adminAPI+"/media/localhost/"+small+"/quarantine", map[string]any{"quarantine": true})
			if st := download(alice, small); st != 404 {
				t.Errorf("download of quarantined media by its uploader = %d, want 404", st)
			}
			if st, _ := alice.Do("GET", "/_matrix/media/v3/download/localhost/"+small, nil); st != 404 {
				t.Errorf("legacy download of quarantined media = %d, want 404", st)
			}
			boss.MustDo("PUT", adminAPI+"/media/localhost/"+small+"/quarantine", map[string]any{"quarantine": false})
			if st := download(alice, small); st != 200 {
				t.Errorf("download after the quarantine is lifted = %d, want 200", st)
			}

			// Purge by size: alice's and bob's 600-byte items share one file.
			res = boss.MustDo("POST", adminAPI+"/media/purge", map[string]any{"size_gt": 500, "user_id": alice.UserID})
			if n := len(res.Get("deleted_media").Array()); n != 1 || res.Get("freed_bytes").Int() != 0 {
				t.Errorf("purge of alice's big media = %s, want 1 item and 0 bytes freed (bob's copy shares the file)", res.Raw)
			}
			if st := download(alice, big); st != 404 {
				t.Errorf("download of purged media = %d, want 404", st)
			}
			// Deletions free quota: 300 used, 600 more fit.
			if st, body := upload(alice, 600, 'd'); st != 200 {
				t.Errorf("upload after the purge = %d %s, want 200", st, body)
			}
			res = boss.MustDo("DELETE", adminAPI+"/media/localhost/"+small, nil)
			if res.Get("freed_bytes").Int() != 300 {
				t.Errorf("delete = %s, want 300 bytes freed", res.Raw)
			}
			if st := download(bob, small); st != 404 {
				t.Errorf("download of deleted media = %d, want 404", st)
			}
			wantActions(t, auditActions(t, boss, "mxc://localhost/"+small), "media.quarantine", "media.unquarantine", "media.delete")
			wantActions(t, auditActions(t, boss, alice.UserID), "media.purge")
		})
	}
}
