package homeserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

const backupAlg = "m.megolm_backup.v1.curve25519-aes-sha2"

func backupKey(fmi, fwd int, verified bool, tag string) map[string]any {
	return map[string]any{"first_message_index": fmi, "forwarded_count": fwd, "is_verified": verified,
		"session_data": map[string]any{"ephemeral": "E" + tag, "ciphertext": "C" + tag, "mac": "M" + tag}}
}

// TestKeyBackupUnstableAliases: the unstable paths Element calls for
// cross-signing setup answer like v3 instead of 404 M_UNRECOGNIZED.
func TestKeyBackupUnstableAliases(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			csKey := func(usage, pub string) map[string]any {
				return map[string]any{"user_id": alice.UserID, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + pub: pub}}
			}
			alice.MustDo("POST", "/_matrix/client/unstable/keys/device_signing/upload", map[string]any{
				"master_key": csKey("master", "MASTERPUB"), "self_signing_key": csKey("self_signing", "SELFPUB"),
				"user_signing_key": csKey("user_signing", "USERPUB"),
			})
			q := alice.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
			if got := q.Get(apiPath("master_keys", alice.UserID, "keys", "ed25519:MASTERPUB")).String(); got != "MASTERPUB" {
				t.Errorf("master key after the unstable upload = %q, want MASTERPUB (%s)", got, q.Raw)
			}
			alice.MustDo("POST", "/_matrix/client/unstable/keys/signatures/upload", map[string]any{})
			if st, res := alice.Do("GET", "/_matrix/client/unstable/room_keys/version", nil); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("unstable room_keys/version = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
		})
	}
}

// TestKeyBackupVersions: create, read (latest and by number), update and
// delete backup versions, with the spec's refusals.
func TestKeyBackupVersions(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			const base = "/_matrix/client/v3/room_keys/version"

			if st, res := alice.Do("GET", base, nil); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Fatalf("GET version before any = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
			v1 := alice.MustDo("POST", base, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{"public_key": "K1"}}).Get("version").String()
			v2 := alice.MustDo("POST", base, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{"public_key": "K2"}}).Get("version").String()
			if v1 == "" || v1 == v2 {
				t.Fatalf("versions = %q, %q, want two distinct", v1, v2)
			}
			latest := alice.MustDo("GET", base, nil)
			if got := latest.Get("version").String(); got != v2 {
				t.Errorf("latest version = %q, want %q", got, v2)
			}
			if got := latest.Get("auth_data.public_key").String(); got != "K2" {
				t.Errorf("latest auth_data = %s, want public_key K2", latest.Get("auth_data").Raw)
			}
			if latest.Get("etag").Type.String() != "String" || latest.Get("count").Int() != 0 || latest.Get("algorithm").String() != backupAlg {
				t.Errorf("latest = %s, want a string etag, count 0 and the algorithm", latest.Raw)
			}
			if got := alice.MustDo("GET", base+"/"+v1, nil).Get("auth_data.public_key").String(); got != "K1" {
				t.Errorf("version %s public key = %q, want K1", v1, got)
			}
			// Another user sees none of it.
			if st, _ := bob.Do("GET", base, nil); st != 404 {
				t.Errorf("bob's GET version = %d, want 404", st)
			}
			if st, _ := bob.Do("GET", base+"/"+v1, nil); st != 404 {
				t.Errorf("bob's GET alice's version = %d, want 404", st)
			}

			// Update: auth_data only, algorithm must match.
			alice.MustDo("PUT", base+"/"+v2, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{"public_key": "K2", "signatures": map[string]any{}}, "version": v2})
			if got := alice.MustDo("GET", base, nil).Get("auth_data.signatures").Raw; got != "{}" {
				t.Errorf("auth_data.signatures after update = %s, want {}", got)
			}
			refusals := []struct {
				name, method, path string
				body               any
				status             int
				code               string
			}{
				{"other algorithm", "PUT", base + "/" + v2, map[string]any{"algorithm": "m.other", "auth_data": map[string]any{}}, 400, "M_INVALID_PARAM"},
				{"body version differs", "PUT", base + "/" + v2, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}, "version": v1}, 400, "M_INVALID_PARAM"},
				{"update unknown version", "PUT", base + "/99", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}, 404, "M_NOT_FOUND"},
				{"auth_data not an object", "POST", base, map[string]any{"algorithm": backupAlg, "auth_data": "x"}, 400, "M_INVALID_PARAM"},
				{"no algorithm", "POST", base, map[string]any{"auth_data": map[string]any{}}, 400, "M_INVALID_PARAM"},
				{"not JSON", "POST", base, []byte("{"), 400, "M_NOT_JSON"},
				{"get bad version", "GET", base + "/abc", nil, 404, "M_NOT_FOUND"},
				{"delete unknown version", "DELETE", base + "/99", nil, 404, "M_NOT_FOUND"},
			}
			for _, c := range refusals {
				st, res := alice.Do(c.method, c.path, c.body)
				if st != c.status || res.Get("errcode").String() != c.code {
					t.Errorf("%s: %s %s = %d %s, want %d %s", c.name, c.method, c.path, st, res.Raw, c.status, c.code)
				}
			}

			// Delete the current one: the older becomes current; numbers are
			// not reused.
			alice.MustDo("DELETE", base+"/"+v2, nil)
			if st, _ := alice.Do("GET", base+"/"+v2, nil); st != 404 {
				t.Errorf("GET deleted version = %d, want 404", st)
			}
			if got := alice.MustDo("GET", base, nil).Get("version").String(); got != v1 {
				t.Errorf("latest after deleting %s = %q, want %q", v2, got, v1)
			}
			v3 := alice.MustDo("POST", base, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
			if v3 == v1 || v3 == v2 {
				t.Errorf("new version after delete = %q, want a number not used before (%s, %s)", v3, v1, v2)
			}
		})
	}
}

// TestKeyBackupKeys: keys put, read and deleted for all rooms, one room
// and one session; etag and count; the replacement rules; the wrong and
// missing version refusals.
func TestKeyBackupKeys(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			const keys = "/_matrix/client/v3/room_keys/keys"
			room1, room2 := "!one:localhost", "!two:localhost"

			// No backup yet.
			if st, res := alice.Do("PUT", keys+"?version=1", map[string]any{"rooms": map[string]any{}}); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("PUT keys with no backup = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
			old := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
			v := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
			q := "?version=" + v

			put := alice.MustDo("PUT", keys+q, map[string]any{"rooms": map[string]any{
				room1: map[string]any{"sessions": map[string]any{"s1": backupKey(5, 1, false, "a"), "s2": backupKey(0, 0, false, "b")}},
				room2: map[string]any{"sessions": map[string]any{"s3": backupKey(0, 0, true, "c")}},
			}})
			if put.Get("count").Int() != 3 || put.Get("etag").String() == "" {
				t.Fatalf("PUT all = %s, want count 3 and an etag", put.Raw)
			}
			etag1 := put.Get("etag").String()
			alice.MustDo("PUT", keys+"/"+hstest.Esc(room2)+q, map[string]any{"sessions": map[string]any{"s4": backupKey(0, 0, false, "d")}})
			put = alice.MustDo("PUT", keys+"/"+hstest.Esc(room2)+"/s5"+q, backupKey(0, 0, false, "e"))
			if put.Get("count").Int() != 5 || put.Get("etag").String() == etag1 {
				t.Errorf("after three PUTs = %s, want count 5 and an etag other than %s", put.Raw, etag1)
			}
			info := alice.MustDo("GET", "/_matrix/client/v3/room_keys/version", nil)
			if info.Get("count").Int() != 5 || info.Get("etag").String() != put.Get("etag").String() {
				t.Errorf("version info = %s, want count 5 and etag %s", info.Raw, put.Get("etag").String())
			}

			// The replacement rules, in the spec's order. s1 holds (5, 1, unverified).
			s1 := keys + "/" + hstest.Esc(room1) + "/s1" + q
			steps := []struct {
				name     string
				key      map[string]any
				wantTag  string
				wantEtag bool // whether the etag moves
			}{
				{"higher index loses", backupKey(6, 0, false, "x1"), "a", false},
				{"same index, more forwards loses", backupKey(5, 2, false, "x2"), "a", false},
				{"all equal keeps the stored key", backupKey(5, 1, false, "x3"), "a", false},
				{"same index, fewer forwards wins", backupKey(5, 0, false, "f"), "f", true},
				{"lower index wins", backupKey(2, 3, false, "g"), "g", true},
				{"verified wins over a lower index", backupKey(9, 9, true, "h"), "h", true},
				{"unverified loses to verified even with a lower index", backupKey(0, 0, false, "x4"), "h", false},
				{"verified with a lower index wins", backupKey(1, 9, true, "i"), "i", true},
			}
			for _, s := range steps {
				before := alice.MustDo("GET", "/_matrix/client/v3/room_keys/version", nil).Get("etag").String()
				res := alice.MustDo("PUT", s1, s.key)
				got := alice.MustDo("GET", s1, nil)
				if tag := got.Get("session_data.ciphertext").String(); tag != "C"+s.wantTag {
					t.Errorf("%s: stored ciphertext = %q, want %q (%s)", s.name, tag, "C"+s.wantTag, got.Raw)
				}
				if moved := res.Get("etag").String() != before; moved != s.wantEtag {
					t.Errorf("%s: etag moved = %v (%s -> %s), want %v", s.name, moved, before, res.Get("etag").String(), s.wantEtag)
				}
			}

			// Reads at each level.
			all := alice.MustDo("GET", keys+q, nil)
			if n := len(all.Get("rooms." + apiKey(room2) + ".sessions").Map()); n != 3 {
				t.Errorf("GET all: room2 has %d sessions, want 3 (%s)", n, all.Raw)
			}
			if got := all.Get(apiPath("rooms", room1, "sessions", "s2", "is_verified")).Raw; got != "false" {
				t.Errorf("GET all: s2 is_verified = %s, want false", got)
			}
			one := alice.MustDo("GET", keys+"/"+hstest.Esc(room1)+q, nil)
			if n := len(one.Get("sessions").Map()); n != 2 {
				t.Errorf("GET room1 = %s, want 2 sessions", one.Raw)
			}
			if got := alice.MustDo("GET", keys+"/"+hstest.Esc("!none:localhost")+q, nil).Raw; strings.TrimSpace(got) != `{"sessions":{}}` {
				t.Errorf("GET a room with no keys = %s, want {\"sessions\":{}}", got)
			}

			refusals := []struct {
				name, method, path string
				body               any
				status             int
				code               string
			}{
				{"put to an old version", "PUT", keys + "?version=" + old, map[string]any{"rooms": map[string]any{}}, 403, "M_WRONG_ROOM_KEYS_VERSION"},
				{"put to an unknown version", "PUT", keys + "?version=77", map[string]any{"rooms": map[string]any{}}, 403, "M_WRONG_ROOM_KEYS_VERSION"},
				{"put without version", "PUT", keys, map[string]any{"rooms": map[string]any{}}, 400, "M_MISSING_PARAM"},
				{"get without version", "GET", keys, nil, 400, "M_MISSING_PARAM"},
				{"get unknown version", "GET", keys + "?version=77", nil, 404, "M_NOT_FOUND"},
				{"get missing session", "GET", keys + "/" + hstest.Esc(room1) + "/nope" + q, nil, 404, "M_NOT_FOUND"},
				{"delete unknown version", "DELETE", keys + "?version=77", nil, 404, "M_NOT_FOUND"},
				{"key missing is_verified", "PUT", keys + "/" + hstest.Esc(room1) + "/s9" + q, map[string]any{"first_message_index": 0, "forwarded_count": 0, "session_data": map[string]any{}}, 400, "M_BAD_JSON"},
				{"session_data not an object", "PUT", keys + "/" + hstest.Esc(room1) + "/s9" + q, map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": "x"}, 400, "M_INVALID_PARAM"},
				{"negative index", "PUT", keys + "/" + hstest.Esc(room1) + "/s9" + q, backupKey(-1, 0, false, "n"), 400, "M_INVALID_PARAM"},
				{"rooms not an object", "PUT", keys + q, map[string]any{"rooms": 3}, 400, "M_BAD_JSON"},
				{"no rooms", "PUT", keys + q, map[string]any{}, 400, "M_BAD_JSON"},
			}
			for _, c := range refusals {
				st, res := alice.Do(c.method, c.path, c.body)
				if st != c.status || res.Get("errcode").String() != c.code {
					t.Errorf("%s: %s %s = %d %s, want %d %s", c.name, c.method, c.path, st, res.Raw, c.status, c.code)
				}
				if c.code == "M_WRONG_ROOM_KEYS_VERSION" && res.Get("current_version").String() != v {
					t.Errorf("%s: current_version = %q, want %q", c.name, res.Get("current_version").String(), v)
				}
			}
			if got := alice.MustDo("GET", "/_matrix/client/v3/room_keys/version", nil).Get("count").Int(); got != 5 {
				t.Errorf("count after the refusals = %d, want 5 (a refused request changes nothing)", got)
			}

			// Deletes at each level.
			del := alice.MustDo("DELETE", keys+"/"+hstest.Esc(room2)+"/s5"+q, nil)
			if del.Get("count").Int() != 4 {
				t.Errorf("DELETE one session = %s, want count 4", del.Raw)
			}
			del = alice.MustDo("DELETE", keys+"/"+hstest.Esc(room2)+q, nil)
			if del.Get("count").Int() != 2 {
				t.Errorf("DELETE one room = %s, want count 2", del.Raw)
			}
			del = alice.MustDo("DELETE", keys+q, nil)
			if del.Get("count").Int() != 0 {
				t.Errorf("DELETE all = %s, want count 0", del.Raw)
			}
			if got := alice.MustDo("GET", keys+q, nil).Raw; strings.TrimSpace(got) != `{"rooms":{}}` {
				t.Errorf("GET all after delete = %s, want {\"rooms\":{}}", got)
			}
		})
	}
}

// TestKeyBackupDeleteVersionDropsKeys: deleting a version removes its keys;
// uploads then go to the version now current.
func TestKeyBackupDeleteVersionDropsKeys(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	v1 := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
	v2 := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
	for i := range 3 {
		alice.MustDo("PUT", fmt.Sprintf("/_matrix/client/v3/room_keys/keys/%s/s%d?version=%s", hstest.Esc("!r:localhost"), i, v2), backupKey(0, 0, false, "k"))
	}
	alice.MustDo("DELETE", "/_matrix/client/v3/room_keys/version/"+v2, nil)
	if st, _ := alice.Do("GET", "/_matrix/client/v3/room_keys/keys?version="+v2, nil); st != 404 {
		t.Errorf("GET keys of a deleted version = %d, want 404", st)
	}
	res := alice.MustDo("PUT", "/_matrix/client/v3/room_keys/keys/"+hstest.Esc("!r:localhost")+"/s9?version="+v1, backupKey(0, 0, false, "k"))
	if res.Get("count").Int() != 1 {
		t.Errorf("PUT into version %s after deleting %s = %s, want count 1", v1, v2, res.Raw)
	}
}

// TestKeyBackupVersionCap: a user keeps at most 100 live backup versions;
// the 101st is refused with 413 M_TOO_LARGE until one is deleted.
func TestKeyBackupVersionCap(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	body := map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}
	first := ""
	for i := range 100 {
		v := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", body).Get("version").String()
		if i == 0 {
			first = v
		}
	}
	if st, res := alice.Do("POST", "/_matrix/client/v3/room_keys/version", body); st != 413 || res.Get("errcode").String() != "M_TOO_LARGE" {
		t.Fatalf("101st version = %d %s, want 413 M_TOO_LARGE", st, res.Raw)
	}
	alice.MustDo("DELETE", "/_matrix/client/v3/room_keys/version/"+first, nil)
	if got := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", body).Get("version").String(); got != "101" {
		t.Errorf("version after deleting one = %q, want 101", got)
	}
}
