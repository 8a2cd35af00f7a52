// Package hstest starts real Parley servers for tests: on 127.0.0.1:0, with
// a fresh data directory, against SQLite and (when PARLEY_TEST_DATABASE_URL
// is set) a fresh PostgreSQL database. Clients speak plain HTTP to them.
package hstest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver"
)

// Store names a backend to test against.
type Store struct {
	Name string
	URL  string // "" for SQLite
	// Neo4jURL puts the relationship graph in Neo4j instead of the main
	// store. The server then gets a server name of its own, so its users
	// never meet another test's in the shared Neo4j.
	Neo4jURL string
}

// Stores returns SQLite, and PostgreSQL when PARLEY_TEST_DATABASE_URL is set.
// Each PostgreSQL entry gets its own new database.
func Stores(t testing.TB) []Store {
	out := []Store{{Name: "sqlite"}}
	admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
	if admin == "" {
		t.Log("PARLEY_TEST_DATABASE_URL not set: skipping PostgreSQL (SQLite only)")
		return out
	}
	return append(out, Store{Name: "postgres", URL: NewPostgresDB(t, admin)})
}

// GraphStores returns Stores, and SQLite with the graph in Neo4j when
// PARLEY_TEST_NEO4J_URL is set: every relationship backend.
func GraphStores(t testing.TB) []Store {
	out := Stores(t)
	neo := os.Getenv("PARLEY_TEST_NEO4J_URL")
	if neo == "" {
		t.Log("PARLEY_TEST_NEO4J_URL not set: skipping Neo4j (SQL graph only)")
		return out
	}
	return append(out, Store{Name: "neo4j", Neo4jURL: neo})
}

// NewPostgresDB creates a database for one test and drops it afterwards.
func NewPostgresDB(t testing.TB, admin string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open admin db: %v", err)
	}
	name := fmt.Sprintf("parley_t_%d_%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		db.Close()
		t.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse PARLEY_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		db.Close()
	})
	return u.String()
}

// Server is a running test server.
type Server struct {
	t       testing.TB
	Srv     *homeserver.Server
	URL     string
	Cfg     config.Config
	FedName string // server name of a federating server (StartFederating), port included
	FedURL  string // https:// URL of its federation listener
	done    chan error
	stopped bool
}

// Options tune a test server.
type Options struct {
	Store   Store
	DataDir string // "" = a new temp dir
	Mutate  func(*config.Config)
}

// Start runs a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.ServerName = "localhost"
	cfg.DataDir = o.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.DatabaseURL = o.Store.URL
	if o.Store.Neo4jURL != "" {
		cfg.Graph.Neo4jURL = o.Store.Neo4jURL
		cfg.ServerName = fmt.Sprintf("t%d-%d.localhost", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	}
	cfg.Registration.Mode = config.RegistrationOpen
	cfg.RateLimit.Enabled = false
	cfg.Passwords.Argon2MemoryKiB = 64
	cfg.Passwords.Argon2Time = 1
	if o.Mutate != nil {
		o.Mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg.Listen = ln.Addr().String()
	cfg.PublicBaseURL = "http://" + cfg.Listen
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := homeserver.New(context.Background(), cfg, log)
	if err != nil {
		ln.Close()
		t.Fatalf("start server: %v", err)
	}
	s := &Server{t: t, Srv: srv, URL: "http://" + cfg.Listen, Cfg: cfg, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Srv.Shutdown(ctx); err != nil {
		s.t.Logf("shutdown: %v", err)
	}
	<-s.done
}

// Client is one logged-in device.
type Client struct {
	t        testing.TB
	Base     string
	UserID   string
	DeviceID string
	Token    string
	http     *http.Client
}

// Register creates a user through the real /register flow.
func (s *Server) Register(t testing.TB, name string) *Client {
	t.Helper()
	c := &Client{t: t, Base: s.URL, http: &http.Client{Timeout: 90 * time.Second}}
	body := map[string]any{"username": name, "password": "pw-" + name, "initial_device_display_name": "first"}
	st, res := c.Do("POST", "/_matrix/client/v3/register", body)
	if st != 401 {
		t.Fatalf("register %s: first call = %d %s, want 401 with a session", name, st, res.Raw)
	}
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": res.Get("session").String()}
	st, res = c.Do("POST", "/_matrix/client/v3/register", body)
	if st != 200 {
		t.Fatalf("register %s = %d %s", name, st, res.Raw)
	}
	c.UserID, c.DeviceID, c.Token = res.Get("user_id").String(), res.Get("device_id").String(), res.Get("access_token").String()
	return c
}

// Login logs in another device of an existing user.
func (s *Server) Login(t testing.TB, name string) *Client {
	t.Helper()
	c := &Client{t: t, Base: s.URL, http: &http.Client{Timeout: 90 * time.Second}}
	st, res := c.Do("POST", "/_matrix/client/v3/login", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": name}, "password": "pw-" + name,
	})
	if st != 200 {
		t.Fatalf("login %s = %d %s", name, st, res.Raw)
	}
	c.UserID, c.DeviceID, c.Token = res.Get("user_id").String(), res.Get("device_id").String(), res.Get("access_token").String()
	return c
}

// Anon is a client with no token.
func (s *Server) Anon(t testing.TB) *Client {
	return &Client{t: t, Base: s.URL, http: &http.Client{Timeout: 90 * time.Second}}
}

// Do sends a request with a JSON body (nil for none; []byte is sent raw)
// and returns the status and the parsed body.
func (c *Client) Do(method, path string, body any) (int, gjson.Result) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, gjson.ParseBytes(raw)
}

// MustDo is Do that fails the test unless the status is 200.
func (c *Client) MustDo(method, path string, body any) gjson.Result {
	c.t.Helper()
	st, res := c.Do(method, path, body)
	if st != 200 {
		c.t.Fatalf("%s %s = %d %s, want 200", method, path, st, res.Raw)
	}
	return res
}

// Esc escapes a path segment (room IDs, aliases, event IDs).
func Esc(s string) string { return url.PathEscape(s) }

// CreateRoom creates a room with the given createRoom body.
func (c *Client) CreateRoom(body map[string]any) string {
	c.t.Helper()
	return c.MustDo("POST", "/_matrix/client/v3/createRoom", body).Get("room_id").String()
}

// Send sends an m.text message with a txnId and returns the event ID.
func (c *Client) Send(roomID, txn, text string) string {
	c.t.Helper()
	return c.MustDo("PUT", "/_matrix/client/v3/rooms/"+Esc(roomID)+"/send/m.room.message/"+Esc(txn),
		map[string]any{"msgtype": "m.text", "body": text}).Get("event_id").String()
}

// Join joins a room by ID or alias.
func (c *Client) Join(idOrAlias string) string {
	c.t.Helper()
	return c.MustDo("POST", "/_matrix/client/v3/join/"+Esc(idOrAlias), map[string]any{}).Get("room_id").String()
}

// Sync runs one /sync.
func (c *Client) Sync(since string, timeoutMs int) gjson.Result {
	c.t.Helper()
	q := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d", timeoutMs)
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	return c.MustDo("GET", q, nil)
}

// Bodies lists the m.room.message bodies of a room's timeline in a sync.
func Bodies(sync gjson.Result, roomID string) []string {
	var out []string
	for _, e := range sync.Get("rooms.join." + gjsonEsc(roomID) + ".timeline.events").Array() {
		if e.Get("type").String() == "m.room.message" {
			out = append(out, e.Get("content.body").String())
		}
	}
	return out
}

// Room returns a room's part of a sync response.
func Room(sync gjson.Result, section, roomID string) gjson.Result {
	return sync.Get("rooms." + section + "." + gjsonEsc(roomID))
}

// gjsonEsc escapes gjson's path characters. It builds no strings.Replacer:
// BenchmarkFanout's members call it on every sync, in the server's process.
func gjsonEsc(s string) string {
	if !strings.ContainsAny(s, ".*?") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == '*' || c == '?' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Messages reads a room's whole log through /messages, oldest first, and
// returns its m.room.message events.
func (c *Client) Messages(roomID string) []gjson.Result {
	c.t.Helper()
	var out []gjson.Result
	from := ""
	for page := 0; page < 10000; page++ {
		q := "/_matrix/client/v3/rooms/" + Esc(roomID) + "/messages?dir=f&limit=100"
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		res := c.MustDo("GET", q, nil)
		chunk := res.Get("chunk").Array()
		for _, e := range chunk {
			if e.Get("type").String() == "m.room.message" {
				out = append(out, e)
			}
		}
		if len(chunk) == 0 || !res.Get("end").Exists() {
			break
		}
		from = res.Get("end").String()
	}
	return out
}

// MessageBodies is Messages reduced to the bodies.
func (c *Client) MessageBodies(roomID string) []string {
	c.t.Helper()
	var out []string
	for _, e := range c.Messages(roomID) {
		out = append(out, e.Get("content.body").String())
	}
	return out
}
