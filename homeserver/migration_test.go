package homeserver_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// The migration fixture (testdata/migration, made by
// scripts/migration-fixture.sh) is a data directory written by Parley at
// commit 1d2743a, before rooms became DAGs, on SQLite (the database file)
// and on PostgreSQL (a dump). TestMigrationFixture opens each with today's
// code, which migrates it in place, and checks that clients see what they
// saw then: the golden files hold what the code of that time served from
// the same fixture. The checks compare what clients see (event IDs, order,
// content, state, membership, receipts, account data), never tokens or
// tables, so they hold across schema changes.
var updateMigrationGolden = flag.Bool("update-migration-golden", false,
	"record testdata/migration/golden-*.json from the running code (only with the code that wrote the fixture)")

const fixtureDir = "testdata/migration"

// fixtureUsers are the fixture's users; each has the password pw-<name>.
var fixtureUsers = []string{"alice", "bob", "carol"}

func TestMigrationFixture(t *testing.T) {
	cases := []struct {
		name string
		// open restores the fixture and returns the server's options.
		open func(t *testing.T) (hstest.Options, bool)
	}{
		{"sqlite", openSQLiteFixture},
		{"postgres", openPostgresFixture},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts, ok := tc.open(t)
			if !ok {
				return
			}
			srv := hstest.Start(t, opts)
			got := observe(t, srv)
			golden := filepath.Join(fixtureDir, "golden-"+tc.name+".json")
			if *updateMigrationGolden {
				raw, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(raw, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", golden)
			}
			raw, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (record it with -update-migration-golden): %v", err)
			}
			var want map[string]json.RawMessage
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			compareObservations(t, got, want)
			checkStillWritable(t, srv, want)
		})
	}
}

// openSQLiteFixture copies the SQLite fixture into a fresh data directory.
func openSQLiteFixture(t *testing.T) (hstest.Options, bool) {
	dir := t.TempDir()
	copyFixtureDir(t, filepath.Join(fixtureDir, "sqlite"), dir)
	gunzipFile(t, filepath.Join(fixtureDir, "sqlite", "parley.db.gz"), filepath.Join(dir, "parley.db"))
	return hstest.Options{DataDir: dir}, true
}

// openPostgresFixture loads the PostgreSQL dump into a fresh database.
func openPostgresFixture(t *testing.T) (hstest.Options, bool) {
	admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
	if admin == "" {
		t.Skip("PARLEY_TEST_DATABASE_URL not set: no PostgreSQL server to test against")
		return hstest.Options{}, false
	}
	dbURL := hstest.NewPostgresDB(t, admin)
	dump := filepath.Join(t.TempDir(), "dump.sql")
	gunzipFile(t, filepath.Join(fixtureDir, "postgres", "dump.sql.gz"), dump)
	raw, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	// pg_dump's psql meta-commands (\restrict) are not SQL; the rest runs
	// as one simple-protocol script on a connection of its own, since it
	// changes session settings (search_path).
	var script strings.Builder
	for line := range strings.Lines(string(raw)) {
		if !strings.HasPrefix(line, `\`) {
			script.WriteString(line)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, script.String()); err != nil {
		t.Fatalf("load the PostgreSQL fixture: %v", err)
	}
	dir := t.TempDir()
	copyFixtureDir(t, filepath.Join(fixtureDir, "postgres"), dir)
	return hstest.Options{DataDir: dir, Store: hstest.Store{Name: "postgres", URL: dbURL}}, true
}

// copyFixtureDir copies the signing key and media of a fixture.
func copyFixtureDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if strings.HasSuffix(path, ".gz") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), raw, 0o600)
	})
	if err != nil {
		t.Fatalf("copy fixture: %v", err)
	}
}

func gunzipFile(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// observations maps a named view ("alice/messages/!room") to what a client
// sees there, reduced to what must survive a migration.
type observations map[string]any

// observe logs in every fixture user and records their views.
func observe(t *testing.T, srv *hstest.Server) observations {
	t.Helper()
	obs := observations{}
	anon := srv.Anon(t)
	dir := anon.MustDo("GET", "/_matrix/client/v3/publicRooms", nil)
	var public []any
	for _, r := range dir.Get("chunk").Array() {
		public = append(public, pick(r, "room_id", "name", "topic", "canonical_alias", "num_joined_members",
			"world_readable", "guest_can_join", "join_rule"))
	}
	obs["publicRooms"] = public
	obs["alias/#lobby"] = anon.MustDo("GET", "/_matrix/client/v3/directory/room/"+hstest.Esc("#lobby:localhost"), nil).Get("room_id").String()
	obs["profile/carol"] = json.RawMessage(anon.MustDo("GET", "/_matrix/client/v3/profile/@carol:localhost", nil).Raw)

	clients := map[string]*hstest.Client{}
	known := map[string]bool{} // every room any user's sync names
	for _, name := range fixtureUsers {
		c := srv.Login(t, name)
		clients[name] = c
		p := name + "/"
		joined := stringsOf(c.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms"))
		slices.Sort(joined)
		obs[p+"joined_rooms"] = joined

		s := c.Sync("", 0)
		var globalAD []any
		for _, ev := range s.Get("account_data.events").Array() {
			if ev.Get("type").String() != "m.push_rules" { // defaults may change with other work
				globalAD = append(globalAD, pick(ev, "type", "content"))
			}
		}
		obs[p+"sync/account_data"] = globalAD
		for section, rooms := range map[string]gjson.Result{"join": s.Get("rooms.join"), "leave": s.Get("rooms.leave")} {
			rooms.ForEach(func(id, room gjson.Result) bool {
				rid := id.String()
				known[rid] = true
				q := p + "sync/" + section + "/" + rid + "/"
				obs[q+"timeline"] = eventsOf(room.Get("timeline.events"))
				obs[q+"state"] = sortedState(room.Get("state.events"))
				var eph []any
				for _, ev := range room.Get("ephemeral.events").Array() {
					if ev.Get("type").String() == "m.receipt" {
						eph = append(eph, pick(ev, "type", "content"))
					}
				}
				obs[q+"receipts"] = eph
				var ad []any
				for _, ev := range room.Get("account_data.events").Array() {
					ad = append(ad, pick(ev, "type", "content"))
				}
				obs[q+"account_data"] = ad
				return true
			})
		}
		s.Get("rooms.invite").ForEach(func(id, room gjson.Result) bool {
			known[id.String()] = true
			var st []any
			for _, ev := range room.Get("invite_state.events").Array() {
				st = append(st, pick(ev, "type", "state_key", "sender", "content"))
			}
			slices.SortFunc(st, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
			obs[p+"sync/invite/"+id.String()] = st
			return true
		})
		for _, typ := range []string{"org.example.settings", "m.direct"} {
			if st, res := c.Do("GET", "/_matrix/client/v3/user/"+hstest.Esc(c.UserID)+"/account_data/"+typ, nil); st == 200 {
				obs[p+"account_data/"+typ] = json.RawMessage(res.Raw)
			}
		}
	}
	// Every user's reads of every room, including refusals: the access
	// rules (a kicked member reads up to the kick, an invitee nothing) must
	// hold on migrated data too.
	for _, name := range fixtureUsers {
		c, p := clients[name], name+"/"
		for rid := range known {
			r := "/_matrix/client/v3/rooms/" + hstest.Esc(rid)
			q := p + "room/" + rid + "/"
			st, msgs := c.Do("GET", r+"/messages?dir=b&limit=1000", nil)
			if st != 200 {
				obs[q+"messages"] = refusal(st, msgs)
				continue
			}
			chunk := msgs.Get("chunk")
			obs[q+"messages"] = eventsOf(chunk)
			if st, res := c.Do("GET", r+"/state", nil); st == 200 {
				obs[q+"state"] = sortedState(res)
			} else {
				obs[q+"state"] = refusal(st, res)
			}
			if st, res := c.Do("GET", r+"/members", nil); st == 200 {
				var members []any
				for _, ev := range res.Get("chunk").Array() {
					members = append(members, pick(ev, "event_id", "state_key", "content"))
				}
				slices.SortFunc(members, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
				obs[q+"members"] = members
			} else {
				obs[q+"members"] = refusal(st, res)
			}
			// The context of the event in the middle of what they read.
			evs := chunk.Array()
			if len(evs) == 0 {
				continue
			}
			mid := evs[len(evs)/2].Get("event_id").String()
			if st, res := c.Do("GET", r+"/context/"+hstest.Esc(mid)+"?limit=6", nil); st == 200 {
				obs[q+"context"] = map[string]any{
					"event":  eventOf(res.Get("event")),
					"before": idsOf(res.Get("events_before")),
					"after":  idsOf(res.Get("events_after")),
					"state":  sortedState(res.Get("state")),
				}
			} else {
				obs[q+"context"] = refusal(st, res)
			}
			if st, res := c.Do("GET", r+"/event/"+hstest.Esc(mid), nil); st == 200 {
				obs[q+"event"] = eventOf(res)
			} else {
				obs[q+"event"] = refusal(st, res)
			}
		}
		for _, mxc := range mediaOf(obs, p) {
			obs[p+"media/"+mxc] = download(t, srv, c, mxc)
		}
	}
	return obs
}

// refusal is what a refused read answers.
func refusal(status int, res gjson.Result) map[string]any {
	return map[string]any{"status": status, "errcode": res.Get("errcode").String()}
}

// mediaOf lists the mxc URIs of the messages a user read.
func mediaOf(obs observations, prefix string) []string {
	var out []string
	for k, v := range obs {
		if !strings.HasPrefix(k, prefix+"room/") || !strings.HasSuffix(k, "/messages") {
			continue
		}
		evs, ok := v.([]any)
		if !ok {
			continue // a refusal
		}
		for _, ev := range evs {
			if u := gjson.GetBytes(ev.(map[string]any)["content"].(json.RawMessage), "url").String(); u != "" {
				out = append(out, u)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func download(t *testing.T, srv *hstest.Server, c *hstest.Client, mxc string) string {
	t.Helper()
	u, err := url.Parse(mxc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v1/media/download/"+u.Host+u.Path, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// eventOf reduces an event to what a migration must keep: identity,
// content, and the unsigned fields clients rely on (not age or
// transaction_id, which depend on when and who asks).
func eventOf(ev gjson.Result) map[string]any {
	out := pick(ev, "event_id", "type", "sender", "state_key", "content", "origin_server_ts", "redacts")
	if v := ev.Get("unsigned.redacted_because.event_id"); v.Exists() {
		out["redacted_because"] = v.String()
	}
	if v := ev.Get("unsigned.replaces_state"); v.Exists() {
		out["replaces_state"] = v.String()
	}
	if v := ev.Get("unsigned.prev_content"); v.Exists() {
		out["prev_content"] = json.RawMessage(v.Raw)
	}
	return out
}

func eventsOf(arr gjson.Result) []any {
	out := []any{}
	for _, ev := range arr.Array() {
		out = append(out, eventOf(ev))
	}
	return out
}

func idsOf(arr gjson.Result) []string { return stringsOf(arr.Get("#.event_id")) }

// sortedState is a state list in a stable order (by type and state key).
func sortedState(arr gjson.Result) []any {
	evs := arr.Array()
	slices.SortFunc(evs, func(a, b gjson.Result) int {
		return strings.Compare(a.Get("type").String()+"\x00"+a.Get("state_key").String(), b.Get("type").String()+"\x00"+b.Get("state_key").String())
	})
	out := []any{}
	for _, ev := range evs {
		out = append(out, eventOf(ev))
	}
	return out
}

func stringsOf(arr gjson.Result) []string {
	out := []string{}
	for _, v := range arr.Array() {
		out = append(out, v.String())
	}
	return out
}

// pick keeps the named top-level fields of a JSON object, as raw JSON.
func pick(obj gjson.Result, fields ...string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		if v := obj.Get(f); v.Exists() {
			out[f] = json.RawMessage(v.Raw)
		}
	}
	return out
}

// compareObservations reports each view that differs from the golden one,
// and views that appeared or went missing.
func compareObservations(t *testing.T, got observations, want map[string]json.RawMessage) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing now; was %s", k, w)
			continue
		}
		if !jsonEqual(t, g, w) {
			gr, _ := json.Marshal(g)
			t.Errorf("%s:\n got %s\nwant %s", k, gr, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			gr, _ := json.Marshal(g)
			t.Errorf("%s: new view %s, not in the golden file", k, gr)
		}
	}
}

// jsonEqual compares a value with raw JSON, both decoded, so that key order
// and spacing do not matter.
func jsonEqual(t *testing.T, got any, want json.RawMessage) bool {
	t.Helper()
	gr, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(gr, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return string(ra) == string(rb)
}

// checkStillWritable: the migrated store takes new writes, which follow
// the old history in /messages and reach the other member's sync.
func checkStillWritable(t *testing.T, srv *hstest.Server, want map[string]json.RawMessage) {
	t.Helper()
	var lobby string
	if err := json.Unmarshal(want["alias/#lobby"], &lobby); err != nil {
		t.Fatal(err)
	}
	alice, bob := srv.Login(t, "alice"), srv.Login(t, "bob")
	since := bob.Sync("", 0).Get("next_batch").String()
	id := alice.Send(lobby, "after-migration", "after the migration")
	s := bob.Sync(since, 10000)
	if got := idsOf(hstest.Room(s, "join", lobby).Get("timeline.events")); !slices.Contains(got, id) {
		t.Errorf("bob's incremental sync timeline = %v, want it to hold the new event %s", got, id)
	}
	chunk := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(lobby)+"/messages?dir=b&limit=2", nil).Get("chunk").Array()
	if len(chunk) != 2 || chunk[0].Get("event_id").String() != id {
		t.Fatalf("newest events = %v, want the new event %s first", idsOf(gjson.Parse("[]")), id)
	}
	var old []map[string]any
	if err := json.Unmarshal(want["alice/room/"+lobby+"/messages"], &old); err != nil || len(old) == 0 {
		t.Fatalf("golden lobby messages: %v", err)
	}
	if got, want := chunk[1].Get("event_id").String(), old[0]["event_id"]; got != want {
		t.Errorf("the event before the new one = %s, want the fixture's last %v", got, want)
	}
}
