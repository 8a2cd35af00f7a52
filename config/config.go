// Package config owns Parley's configuration: what can be set, the defaults
// when it is not, how a YAML file and PARLEY_* environment variables combine,
// and the checks that reject a bad setting at startup rather than at first
// use. Nothing here reads the environment or the file system by itself: the
// caller passes the file path and a getenv function, so tests and embedders
// control both.
package config

import (
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"runtime"
)

// Config is the whole server configuration. The zero value of a field means
// its default, except where a field's comment says otherwise; Load and
// Default fill those defaults in, so code reading a loaded Config sees real
// values.
type Config struct {
	// ServerName is the domain in user IDs (@alice:example.org) and room
	// aliases; it cannot change once users exist. Zero value means
	// "localhost".
	ServerName string `yaml:"server_name"`
	// Listen is the host:port the HTTP server binds. Zero value means
	// "127.0.0.1:8008": loopback, for running behind a reverse proxy.
	Listen string `yaml:"listen"`
	// PublicBaseURL is the URL clients reach this server at, advertised in
	// /.well-known/matrix/client; it differs from Listen behind a proxy. Zero
	// value means "http://" + Listen, with "localhost" in place of an
	// all-interfaces host such as 0.0.0.0, which no client can dial.
	PublicBaseURL string `yaml:"public_base_url"`
	// DataDir holds the SQLite database, media and the signing key. Zero
	// value means "./parley-data".
	DataDir string `yaml:"data_dir"`
	// DatabaseURL selects the database: a postgres:// or postgresql:// URL
	// for PostgreSQL. Zero value means SQLite in DataDir (see SQLitePath).
	DatabaseURL  string       `yaml:"database_url"`
	Registration Registration `yaml:"registration"`
	Media        Media        `yaml:"media"`
	RateLimit    RateLimit    `yaml:"rate_limit"`
	Passwords    Passwords    `yaml:"passwords"`
	Sync         Sync         `yaml:"sync"`
	Graph        Graph        `yaml:"graph"`
	Log          Log          `yaml:"log"`
	RoomTiers    RoomTiers    `yaml:"room_tiers"`
}

// Registration modes.
const (
	RegistrationClosed = "closed" // only an admin creates accounts
	RegistrationOpen   = "open"   // anyone may register
	RegistrationToken  = "token"  // anyone holding a registration token
)

// Registration says who may create an account.
type Registration struct {
	// Mode is closed, open or token. Zero value means closed: a new server
	// should not be open to the world before its admin decides so.
	Mode string `yaml:"mode"`
	// Tokens are the registration tokens (m.login.registration_token)
	// accepted in token mode. Tokens stored in the database's
	// registration_tokens table count too, so token mode with none listed
	// is valid. Zero value means none.
	Tokens []string `yaml:"tokens"`
	// SharedSecret is reserved for a Synapse-compatible shared-secret
	// registration endpoint, which Parley does not serve yet: it is read and
	// validated but unused. Use `parley user add` to create accounts.
	SharedSecret string `yaml:"shared_secret"`
}

// Media limits the media repository.
type Media struct {
	// MaxUploadBytes is the largest upload accepted. Zero value means 50 MiB,
	// enough for photos and short videos without letting one user fill the
	// disk in a few requests.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
}

// RateLimit bounds how fast one user and one client address may send
// requests; excess requests get 429 M_LIMIT_EXCEEDED with retry_after_ms.
type RateLimit struct {
	// Enabled turns limiting on. A bool has no spare zero value, so this one
	// is the exception: Default and a file that omits the key give true, and
	// only an explicit false turns limiting off.
	Enabled bool `yaml:"enabled"`
	// PerUser limits each signed-in user. Zero values mean 10 requests a
	// second with a burst of 50: a client's startup fires a few dozen
	// requests at once, while steady use stays far below 10 a second.
	PerUser Bucket `yaml:"per_user"`
	// PerIP limits each client address, which is what bounds requests before
	// sign-in (login, registration). Zero values mean 20 a second with a burst
	// of 100, twice PerUser since several users may share an address (NAT).
	// Loopback clients are not limited per address: on one host they are a
	// reverse proxy speaking for everyone.
	PerIP Bucket `yaml:"per_ip"`
	// Exempt lists user IDs never limited, such as bridges and bots. Zero
	// value means none.
	Exempt []string `yaml:"exempt"`
}

// Bucket is a token bucket: PerSecond tokens come back each second, up to
// Burst. Zero fields take the defaults of the RateLimit field holding it.
type Bucket struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Passwords sets the cost of password hashing (argon2id).
type Passwords struct {
	// Concurrency is how many hashes may run at once; further logins wait,
	// so a login flood cannot take every CPU and Concurrency*Argon2MemoryKiB
	// bounds the memory it uses. Zero value means one less than
	// runtime.GOMAXPROCS(0), the CPUs this process may use (a container's
	// quota, not the host's count), and at least 1: one CPU is always left
	// for message delivery.
	Concurrency int `yaml:"concurrency"`
	// Argon2MemoryKiB is the memory one hash uses. Zero value means 19456
	// (19 MiB), OWASP's recommendation with Argon2Time 2.
	Argon2MemoryKiB uint32 `yaml:"argon2_memory_kib"`
	// Argon2Time is the number of passes over that memory. Zero value means 2.
	Argon2Time uint32 `yaml:"argon2_time"`
}

// Sync tunes /sync.
type Sync struct {
	// MaxTimeoutMs caps how long a /sync long-poll waits for news, whatever
	// the client asks for, so that idle connections turn over. Keep it under
	// a reverse proxy's read timeout. Zero value means 60000 (one minute).
	MaxTimeoutMs int64 `yaml:"max_timeout_ms"`
	// DefaultTimelineLimit is how many events per room a sync returns when
	// the client's filter does not say. Zero value means 10, as Synapse does,
	// which clients are tuned for.
	DefaultTimelineLimit int `yaml:"default_timeline_limit"`
}

// Graph says where the relationship graph lives: Neo4j when Neo4jURL is
// set, else tables in the main store.
type Graph struct {
	// Neo4jURL is a neo4j:// or bolt:// URL (or their +s, +ssc variants).
	// Zero value keeps the graph in the main store.
	Neo4jURL string `yaml:"neo4j_url"`
	// Neo4jUser and Neo4jPassword authenticate to Neo4j. Zero values mean
	// no authentication.
	Neo4jUser     string `yaml:"neo4j_user"`
	Neo4jPassword string `yaml:"neo4j_password"`
}

// Log configures the server log.
type Log struct {
	// Level is debug, info, warn or error. Zero value means info.
	Level string `yaml:"level"`
	// Format is text (for people) or json (for log collectors). Zero value
	// means text.
	Format string `yaml:"format"`
}

// Default returns the configuration used when nothing is configured.
func Default() Config {
	c := Config{RateLimit: RateLimit{Enabled: true}}
	c.fillDefaults()
	return c
}

// fillDefaults replaces zero values with the defaults documented on each
// field. Enabled is left alone: false is a real setting.
func (c *Config) fillDefaults() {
	setDefault(&c.ServerName, "localhost")
	setDefault(&c.Listen, "127.0.0.1:8008")
	setDefault(&c.PublicBaseURL, baseURLFor(c.Listen))
	setDefault(&c.DataDir, defaultDataDir)
	setDefault(&c.Registration.Mode, RegistrationClosed)
	setDefault(&c.Media.MaxUploadBytes, 50<<20)
	setDefault(&c.RateLimit.PerUser.PerSecond, 10)
	setDefault(&c.RateLimit.PerUser.Burst, 50)
	setDefault(&c.RateLimit.PerIP.PerSecond, 20)
	setDefault(&c.RateLimit.PerIP.Burst, 100)
	setDefault(&c.Passwords.Concurrency, max(1, runtime.GOMAXPROCS(0)-1))
	setDefault(&c.Passwords.Argon2MemoryKiB, 19456)
	setDefault(&c.Passwords.Argon2Time, 2)
	setDefault(&c.Sync.MaxTimeoutMs, 60000)
	setDefault(&c.Sync.DefaultTimelineLimit, 10)
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
	setDefault(&c.RoomTiers.LargeAbove, 500)
	setDefault(&c.RoomTiers.HugeAbove, 5000)
	// "tokens: []" and an absent key mean the same; keep one representation
	// so that configurations compare equal.
	if len(c.Registration.Tokens) == 0 {
		c.Registration.Tokens = nil
	}
	if len(c.RateLimit.Exempt) == 0 {
		c.RateLimit.Exempt = nil
	}
}

const defaultDataDir = "./parley-data"

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// baseURLFor derives the default public base URL from a listen address, or
// returns "" when listen does not parse (Validate reports that).
func baseURLFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if addr, err := netip.ParseAddr(host); host == "" || err == nil && addr.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// IsPostgres reports whether the database is PostgreSQL rather than SQLite.
func (c Config) IsPostgres() bool {
	u, err := url.Parse(c.DatabaseURL)
	return c.DatabaseURL != "" && err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// SQLitePath is the SQLite database file, <data_dir>/parley.db, or "" when
// the database is PostgreSQL, so that no code opens a stray SQLite file.
func (c Config) SQLitePath() string {
	if c.IsPostgres() {
		return ""
	}
	dir := c.DataDir
	setDefault(&dir, defaultDataDir)
	return filepath.Join(dir, "parley.db")
}
