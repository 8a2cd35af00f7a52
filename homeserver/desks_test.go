package homeserver_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

const (
	deskAdminAPI  = "/_parley/admin/v1"
	deskClientAPI = "/_parley/client/v1/desks/"
)

// deskShop is a server with an admin and one desk, driven over HTTP.
type deskShop struct {
	t    *testing.T
	srv  *hstest.Server
	boss *hstest.Client // a server admin: the shop's operator
	desk string
}

func newDeskShop(t *testing.T, o hstest.Options, desk string, cfg map[string]any) *deskShop {
	t.Helper()
	srv := hstest.Start(t, o)
	if _, err := srv.Srv.CreateUser(context.Background(), "boss", "pw-boss", true); err != nil {
		t.Fatal(err)
	}
	w := &deskShop{t: t, srv: srv, boss: srv.Login(t, "boss"), desk: desk}
	if cfg != nil {
		w.boss.MustDo("PUT", w.deskPath(), cfg)
	}
	return w
}

func (w *deskShop) deskPath() string { return deskAdminAPI + "/desks/" + w.desk }

// agent registers a user, makes them an agent and brings them online.
func (w *deskShop) agent(name string, body map[string]any) *hstest.Client {
	w.t.Helper()
	c := w.srv.Register(w.t, name)
	w.boss.MustDo("PUT", w.deskPath()+"/agents/"+hstest.Esc(c.UserID), body)
	deskPresence(c, "online")
	return c
}

func deskPresence(c *hstest.Client, state string) {
	c.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(c.UserID)+"/status", map[string]any{"presence": state})
}

func (w *deskShop) open(c *hstest.Client, category, body string) gjson.Result {
	w.t.Helper()
	return c.MustDo("POST", deskClientAPI+w.desk+"/consultations", map[string]any{"category": category, "body": body})
}

func (w *deskShop) consultation(c *hstest.Client, id string) gjson.Result {
	w.t.Helper()
	return c.MustDo("GET", deskClientAPI+w.desk+"/consultations/"+id, nil)
}

func (w *deskShop) close(c *hstest.Client, id string, body map[string]any) gjson.Result {
	w.t.Helper()
	return c.MustDo("POST", deskClientAPI+w.desk+"/consultations/"+id+"/close", body)
}

func (w *deskShop) status(c *hstest.Client, status string) {
	w.t.Helper()
	c.MustDo("PUT", deskClientAPI+w.desk+"/agents/"+hstest.Esc(c.UserID)+"/status", map[string]any{"status": status})
}

// sweep runs the desks' background pass now, as if the clock read now.
func (w *deskShop) sweep(now time.Time) { w.srv.Srv.Desks.Sweep(context.Background(), now) }

// live is the desk's admin view, checked for the invariants that must hold
// at every moment: no agent above capacity, loads that match the lists, no
// consultation held by two agents, queue positions 1..n per category.
func (w *deskShop) live() gjson.Result {
	w.t.Helper()
	st := w.boss.MustDo("GET", w.deskPath(), nil)
	deskInvariants(w.t, st)
	return st
}

func deskInvariants(t testing.TB, st gjson.Result) {
	t.Helper()
	holder := map[string]string{}
	for _, a := range st.Get("agents").Array() {
		user, load, capacity := a.Get("user_id").String(), a.Get("load").Int(), a.Get("capacity").Int()
		if load > capacity {
			t.Errorf("%s has load %d above capacity %d", user, load, capacity)
		}
		if got := int64(len(a.Get("consultations").Array())); got != load {
			t.Errorf("%s has load %d but %d consultations", user, load, got)
		}
		for _, id := range a.Get("consultations").Array() {
			if other, ok := holder[id.String()]; ok {
				t.Errorf("consultation %s is held by %s and %s", id, other, user)
			}
			holder[id.String()] = user
		}
	}
	next := map[string]int64{}
	for _, q := range st.Get("queue").Array() {
		cat := q.Get("category").String()
		next[cat]++
		if got := q.Get("position").Int(); got != next[cat] {
			t.Errorf("queued %s has position %d in %s, want %d", q.Get("consultation_id"), got, cat, next[cat])
		}
	}
}

// deskLoads returns each agent's consultations, oldest first, from a live view.
func deskLoads(st gjson.Result) map[string][]string {
	out := map[string][]string{}
	for _, a := range st.Get("agents").Array() {
		var ids []string
		for _, id := range a.Get("consultations").Array() {
			ids = append(ids, id.String())
		}
		out[a.Get("user_id").String()] = ids
	}
	return out
}

func deskQueue(st gjson.Result) []string {
	var out []string
	for _, q := range st.Get("queue").Array() {
		out = append(out, q.Get("consultation_id").String())
	}
	return out
}

// deskNotices returns the io.parley.desk.notice parts of a room's notices,
// oldest first, as c reads them.
func deskNotices(c *hstest.Client, roomID string) []gjson.Result {
	var out []gjson.Result
	for _, e := range c.Messages(roomID) {
		if e.Get("content.msgtype").String() == "m.notice" {
			out = append(out, e.Get(`content.io\.parley\.desk\.notice`))
		}
	}
	return out
}

func deskState(c *hstest.Client, roomID string) gjson.Result {
	return c.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/state/io.parley.desk.consultation", nil)
}

func deskMembers(c *hstest.Client, roomID string) []string {
	var out []string
	c.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/joined_members", nil).Get("joined").ForEach(func(k, _ gjson.Result) bool {
		out = append(out, k.String())
		return true
	})
	sort.Strings(out)
	return out
}

// metricsText fetches the Prometheus exposition with c's token.
func deskMetrics(t *testing.T, c *hstest.Client) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.Base+deskAdminAPI+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDeskAdminAPI: only admins run desks; bad settings are refused and
// change nothing; updates keep what they do not name; a desk's service
// user cannot log in nor be taken over.
func TestDeskAdminAPI(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := newDeskShop(t, hstest.Options{Store: store}, "shop", map[string]any{"name": "Acme", "strategy": "round_robin", "capacity": 4})
			alice := w.srv.Register(t, "alice")
			w.srv.Register(t, "desk.taken")
			before := w.boss.MustDo("GET", w.deskPath(), nil)
			if got := before.Get("service_user").String(); got != "@desk.shop:localhost" {
				t.Errorf("service_user = %q, want @desk.shop:localhost", got)
			}
			cases := []errorCase{
				{"non-admin puts a desk", alice, "PUT", w.deskPath(), map[string]any{}, 403, "M_FORBIDDEN"},
				{"non-admin reads a desk", alice, "GET", w.deskPath(), nil, 403, "M_FORBIDDEN"},
				{"non-admin lists desks", alice, "GET", deskAdminAPI + "/desks", nil, 403, "M_FORBIDDEN"},
				{"non-admin adds an agent", alice, "PUT", w.deskPath() + "/agents/" + hstest.Esc(alice.UserID), map[string]any{}, 403, "M_FORBIDDEN"},
				{"non-admin deletes", alice, "DELETE", w.deskPath(), nil, 403, "M_FORBIDDEN"},
				{"non-admin metrics", alice, "GET", deskAdminAPI + "/metrics", nil, 403, "M_FORBIDDEN"},
				{"unknown desk", w.boss, "GET", deskAdminAPI + "/desks/nope", nil, 404, "M_NOT_FOUND"},
				{"delete unknown desk", w.boss, "DELETE", deskAdminAPI + "/desks/nope", nil, 404, "M_NOT_FOUND"},
				{"agent on unknown desk", w.boss, "PUT", deskAdminAPI + "/desks/nope/agents/" + hstest.Esc(alice.UserID), map[string]any{}, 404, "M_NOT_FOUND"},
				{"bad desk ID", w.boss, "PUT", deskAdminAPI + "/desks/Bad%20ID", map[string]any{}, 400, "M_INVALID_PARAM"},
				{"unknown strategy", w.boss, "PUT", w.deskPath(), map[string]any{"strategy": "fastest"}, 400, "M_INVALID_PARAM"},
				{"capacity zero", w.boss, "PUT", w.deskPath(), map[string]any{"capacity": 0}, 400, "M_INVALID_PARAM"},
				{"capacity not a number", w.boss, "PUT", w.deskPath(), map[string]any{"capacity": "five"}, 400, "M_BAD_JSON"},
				{"no categories", w.boss, "PUT", w.deskPath(), map[string]any{"categories": []string{}}, 400, "M_INVALID_PARAM"},
				{"bad category", w.boss, "PUT", w.deskPath(), map[string]any{"categories": []string{"Pre Sale"}}, 400, "M_INVALID_PARAM"},
				{"repeated category", w.boss, "PUT", w.deskPath(), map[string]any{"categories": []string{"a", "a"}}, 400, "M_INVALID_PARAM"},
				{"negative timeout", w.boss, "PUT", w.deskPath(), map[string]any{"reply_timeout_s": -1}, 400, "M_INVALID_PARAM"},
				{"empty name", w.boss, "PUT", w.deskPath(), map[string]any{"name": "  "}, 400, "M_INVALID_PARAM"},
				{"not JSON", w.boss, "PUT", w.deskPath(), []byte(`{"name":`), 400, "M_NOT_JSON"},
				{"not an object", w.boss, "PUT", w.deskPath(), []byte(`[]`), 400, "M_BAD_JSON"},
				{"service user taken by a person", w.boss, "PUT", deskAdminAPI + "/desks/taken", map[string]any{}, 400, "M_INVALID_PARAM"},
				{"agent unknown user", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc("@ghost:localhost"), map[string]any{}, 404, "M_NOT_FOUND"},
				{"agent on another server", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc("@bob:elsewhere"), map[string]any{}, 400, "M_INVALID_PARAM"},
				{"agent not a user ID", w.boss, "PUT", w.deskPath() + "/agents/bob", map[string]any{}, 400, "M_INVALID_PARAM"},
				{"service user as agent", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc("@desk.shop:localhost"), map[string]any{}, 400, "M_INVALID_PARAM"},
				{"skill not a category", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc(alice.UserID), map[string]any{"skills": []string{"repairs"}}, 400, "M_INVALID_PARAM"},
				{"negative agent capacity", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc(alice.UserID), map[string]any{"capacity": -1}, 400, "M_INVALID_PARAM"},
				{"skills not a list", w.boss, "PUT", w.deskPath() + "/agents/" + hstest.Esc(alice.UserID), map[string]any{"skills": "presale"}, 400, "M_BAD_JSON"},
				{"remove a non-agent", w.boss, "DELETE", w.deskPath() + "/agents/" + hstest.Esc(alice.UserID), nil, 404, "M_NOT_FOUND"},
			}
			expectErrors(t, cases)
			if after := w.boss.MustDo("GET", w.deskPath(), nil); after.Raw != before.Raw {
				t.Errorf("refused requests changed the desk:\n got %s\nwant %s", after.Raw, before.Raw)
			}
			if list := w.boss.MustDo("GET", deskAdminAPI+"/desks", nil); len(list.Get("desks").Array()) != 1 {
				t.Errorf("desks = %s, want only shop", list.Raw)
			}

			// An update names only what changes.
			got := w.boss.MustDo("PUT", w.deskPath(), map[string]any{"capacity": 3})
			if got.Get("capacity").Int() != 3 || got.Get("strategy").String() != "round_robin" || got.Get("name").String() != "Acme" {
				t.Errorf("after updating capacity = %s, want capacity 3, strategy and name kept", got.Raw)
			}
			// A new agent has every category and the desk's capacity.
			a := w.boss.MustDo("PUT", w.deskPath()+"/agents/"+hstest.Esc(alice.UserID), map[string]any{})
			if a.Get("skills.#").Int() != 2 || a.Get("capacity").Int() != 3 || a.Get("status").String() != "available" {
				t.Errorf("new agent = %s, want both skills, capacity 3, available", a.Raw)
			}
			a = w.boss.MustDo("PUT", w.deskPath()+"/agents/"+hstest.Esc(alice.UserID), map[string]any{"capacity": 7})
			if a.Get("skills.#").Int() != 2 || a.Get("capacity").Int() != 7 {
				t.Errorf("agent after capacity update = %s, want skills kept, capacity 7", a.Raw)
			}

			// Nobody logs in as the service user.
			anon := w.srv.Anon(t)
			for _, pw := range []string{"", "pw-desk.shop", "x"} {
				st, res := anon.Do("POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
					"identifier": map[string]string{"type": "m.id.user", "user": "desk.shop"}, "password": pw})
				if st != 403 {
					t.Errorf("login as the service user with %q = %d %s, want 403", pw, st, res.Raw)
				}
			}

			w.boss.MustDo("DELETE", w.deskPath()+"/agents/"+hstest.Esc(alice.UserID), nil)
			w.boss.MustDo("DELETE", w.deskPath(), nil)
			if st, _ := w.boss.Do("GET", w.deskPath(), nil); st != 404 {
				t.Errorf("GET a deleted desk = %d, want 404", st)
			}
		})
	}
}

// TestDeskClientErrors: every refused consultation request gets its Matrix
// error and changes nothing.
func TestDeskClientErrors(t *testing.T) {
	w := newDeskShop(t, hstest.Options{}, "shop", map[string]any{"categories": []string{"presale", "aftersale"}})
	ann := w.agent("ann", map[string]any{"skills": []string{"presale"}})
	ben := w.agent("ben", map[string]any{"skills": []string{"aftersale"}})
	cust := w.srv.Register(t, "cust")
	eve := w.srv.Register(t, "eve")
	c := w.open(cust, "presale", "Is it waterproof?")
	id := c.Get("consultation_id").String()
	base := deskClientAPI + "shop/consultations"
	before := w.live().Raw

	cases := []errorCase{
		{"unknown desk", cust, "POST", deskClientAPI + "nope/consultations", map[string]any{"category": "presale", "body": "hi"}, 404, "M_NOT_FOUND"},
		{"unknown category", cust, "POST", base, map[string]any{"category": "repairs", "body": "hi"}, 400, "M_INVALID_PARAM"},
		{"no category", cust, "POST", base, map[string]any{"body": "hi"}, 400, "M_INVALID_PARAM"},
		{"empty body", cust, "POST", base, map[string]any{"category": "aftersale", "body": "  "}, 400, "M_INVALID_PARAM"},
		{"body too long", cust, "POST", base, map[string]any{"category": "aftersale", "body": strings.Repeat("x", 40000)}, 400, "M_INVALID_PARAM"},
		{"body not a string", cust, "POST", base, map[string]any{"category": "aftersale", "body": 7}, 400, "M_BAD_JSON"},
		{"not JSON", cust, "POST", base, []byte(`{`), 400, "M_NOT_JSON"},
		{"stranger reads", eve, "GET", base + "/" + id, nil, 403, "M_FORBIDDEN"},
		{"other agent reads", ben, "GET", base + "/" + id, nil, 403, "M_FORBIDDEN"},
		{"unknown consultation", cust, "GET", base + "/nope", nil, 404, "M_NOT_FOUND"},
		{"customer transfers", cust, "POST", base + "/" + id + "/transfer", map[string]any{"to": ben.UserID}, 403, "M_FORBIDDEN"},
		{"transfer to a non-agent", ann, "POST", base + "/" + id + "/transfer", map[string]any{"to": eve.UserID}, 400, "M_INVALID_PARAM"},
		{"transfer to a bad ID", ann, "POST", base + "/" + id + "/transfer", map[string]any{"to": "ben"}, 400, "M_INVALID_PARAM"},
		{"transfer without the skill", ann, "POST", base + "/" + id + "/transfer", map[string]any{"to": ben.UserID}, 400, "M_INVALID_PARAM"},
		{"transfer to oneself", ann, "POST", base + "/" + id + "/transfer", map[string]any{"to": ann.UserID}, 400, "M_INVALID_PARAM"},
		{"transfer unknown", ann, "POST", base + "/nope/transfer", map[string]any{"to": ben.UserID}, 404, "M_NOT_FOUND"},
		{"rating too high", cust, "POST", base + "/" + id + "/close", map[string]any{"rating": 6}, 400, "M_INVALID_PARAM"},
		{"rating zero", cust, "POST", base + "/" + id + "/close", map[string]any{"rating": 0}, 400, "M_INVALID_PARAM"},
		{"rating not an integer", cust, "POST", base + "/" + id + "/close", map[string]any{"rating": 4.5}, 400, "M_BAD_JSON"},
		{"agent rates", ann, "POST", base + "/" + id + "/close", map[string]any{"rating": 5}, 403, "M_FORBIDDEN"},
		{"stranger closes", eve, "POST", base + "/" + id + "/close", map[string]any{}, 403, "M_FORBIDDEN"},
		{"close unknown", cust, "POST", base + "/nope/close", map[string]any{}, 404, "M_NOT_FOUND"},
		{"status of another agent", ann, "PUT", deskClientAPI + "shop/agents/" + hstest.Esc(ben.UserID) + "/status", map[string]any{"status": "away"}, 403, "M_FORBIDDEN"},
		{"unknown status", ann, "PUT", deskClientAPI + "shop/agents/" + hstest.Esc(ann.UserID) + "/status", map[string]any{"status": "sleeping"}, 400, "M_INVALID_PARAM"},
		{"status of a non-agent", eve, "PUT", deskClientAPI + "shop/agents/" + hstest.Esc(eve.UserID) + "/status", map[string]any{"status": "away"}, 404, "M_NOT_FOUND"},
		{"unknown list state", ann, "GET", base + "?state=bogus", nil, 400, "M_INVALID_PARAM"},
	}
	expectErrors(t, cases)
	if after := w.live().Raw; after != before {
		t.Errorf("refused requests changed the desk:\n got %s\nwant %s", after, before)
	}
	if got := w.consultation(cust, id); got.Get("state").String() != "assigned" || got.Get("agent").String() != ann.UserID {
		t.Errorf("consultation after refusals = %s, want assigned to ann", got.Raw)
	}
	// A retried open returns the open consultation and posts nothing twice.
	again := w.open(cust, "presale", "Is it waterproof?")
	if again.Get("consultation_id").String() != id {
		t.Errorf("retried open = %s, want consultation %s again", again.Raw, id)
	}
	if got := cust.MessageBodies(c.Get("room_id").String()); len(got) != 2 { // the question and one notice
		t.Errorf("room after a retried open = %q, want the question and one notice", got)
	}
}

// deskSameSet reports whether a and b hold the same strings, in any order.
func deskSameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// deskChat is a room's messages as c reads them, desk notices left out.
func deskChat(c *hstest.Client, roomID string) []string {
	var out []string
	for _, e := range c.Messages(roomID) {
		if e.Get("content.msgtype").String() != "m.notice" {
			out = append(out, e.Get("content.body").String())
		}
	}
	return out
}
