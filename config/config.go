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
	Writer       Writer       `yaml:"writer"`
	RoomLimits   RoomLimits   `yaml:"room_limits"`
	HTTP         HTTP         `yaml:"http"`
	ToDevice     ToDevice     `yaml:"to_device"`
	RoomTiers    RoomTiers    `yaml:"room_tiers"`
	// DefaultRoomVersion is the version of rooms created without one
	// (createRoom's room_version). Zero value means "12", the version
	// Synapse creates by default; "10" and "11" may be chosen for rooms
	// that servers predating version 12 must join. Rooms keep the version
	// they were created with.
	DefaultRoomVersion string `yaml:"default_room_version"`
	// FederationInbound bounds inbound federation transactions
	// (federation_inbound.go).
	FederationInbound FederationInbound `yaml:"federation_inbound"`
	Federation        Federation        `yaml:"federation"`
	// Push configures delivery to push gateways (push.go).
	Push Push `yaml:"push"`
	// Envelopes configures the wallet and red envelopes (envelopes.go).
	Envelopes Envelopes `yaml:"envelopes"`
	// Channels bounds broadcast channel posts (channels.go).
	Channels Channels `yaml:"channels"`
	// Moments configures moments (moments.go).
	Moments Moments `yaml:"moments"`
}

// HTTP bounds what one client connection may hold.
type HTTP struct {
	// BodyIdleTimeoutMs is how long a request body read may wait for the
	// next bytes; a client that trickles its body slower is cut off. Zero
	// value means 30000 (30 s): slow mobile links still make progress
	// within it, while a trickling client frees its connection quickly.
	BodyIdleTimeoutMs int64 `yaml:"body_idle_timeout_ms"`
	// MaxConnsPerAddress caps the open connections from one client address
	// (IPv6 by /64); further ones are closed at once. Zero value means 100:
	// a browser opens about six, and the cap keeps one address from using
	// up the server's file descriptors.
	MaxConnsPerAddress int `yaml:"max_conns_per_address"`
	// LimitLoopback applies MaxConnsPerAddress to loopback clients too.
	// Zero value (false) exempts them: behind a reverse proxy on this host
	// every client arrives from loopback, so cap there instead.
	LimitLoopback bool `yaml:"limit_loopback"`
}

// ToDevice bounds to-device messages (sendToDevice).
type ToDevice struct {
	// MaxMessagesPerRequest caps the devices one sendToDevice request
	// reaches, after "*" is expanded to a user's devices; a larger request
	// gets 413 M_TOO_LARGE and stores nothing. Zero value means 1000: clients
	// send room keys in batches of a few hundred, and 1000 rows keep one
	// writer job to milliseconds.
	MaxMessagesPerRequest int `yaml:"max_messages_per_request"`
	// RetentionHours is how long an undelivered message waits for its
	// device to sync before it is deleted. Zero value means 168 (7 days),
	// as long as a device usually stays offline and still comes back.
	RetentionHours int `yaml:"retention_hours"`
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
	// ThumbnailMaxPixels refuses thumbnails (413) of images with more
	// pixels, read from the header before decoding. Zero value means
	// 32,000,000 (Synapse's max_image_pixels): every common camera photo
	// fits, and decoding stays near a CPU-second.
	ThumbnailMaxPixels int64 `yaml:"thumbnail_max_pixels"`
	// ThumbnailMaxDecodeBytes refuses thumbnails of images whose decoded
	// pixels (and a progressive JPEG's coefficients) need more memory. Zero
	// value means 268435456 (256 MiB).
	ThumbnailMaxDecodeBytes int64 `yaml:"thumbnail_max_decode_bytes"`
	// ThumbnailMaxJPEGScans refuses thumbnails of JPEGs with more scans:
	// the decoder passes over the whole image per scan. Zero value means 32
	// (encoders write about 10); large images get fewer (400 MP-scans).
	ThumbnailMaxJPEGScans int `yaml:"thumbnail_max_jpeg_scans"`
	// ThumbnailConcurrency is how many images are decoded for thumbnails at
	// once. Zero value means 1, leaving the other cores to messages.
	ThumbnailConcurrency int `yaml:"thumbnail_concurrency"`
	// ThumbnailQueue is how many thumbnail generations may wait for a
	// decoder; more get 429 M_LIMIT_EXCEEDED. Zero value means 16.
	ThumbnailQueue int `yaml:"thumbnail_queue"`
	// QuotaBytes caps the media bytes each user may have stored, so one
	// account cannot fill the disk; an upload past it gets 403
	// M_RESOURCE_LIMIT_EXCEEDED. Zero value means no quota. With a quota,
	// start-up reads every media record once to sum each user's usage.
	// Users in rate_limit.exempt have no quota.
	QuotaBytes int64 `yaml:"quota_bytes"`
	// AdminContact is the admin_contact that a quota refusal carries (a
	// mailto: or https: URI); the spec requires the field. Zero value
	// means an empty string.
	AdminContact string `yaml:"admin_contact"`
}

// RateLimit bounds how fast one user and one client address may send
// requests; excess requests get 429 M_LIMIT_EXCEEDED with retry_after_ms.
type RateLimit struct {
	// Enabled turns limiting on. A bool has no spare zero value, so this one
	// is the exception: Default and a file that omits the key give true, and
	// only an explicit false turns limiting off.
	Enabled bool `yaml:"enabled"`
	// PerUser is deprecated and ignored: it was one bucket per user for
	// every request, which let typing notices and read markers starve a
	// user's messages. Actions now have limits of their own (Message, Join,
	// Invite*, CreateRoom, MediaUpload) and PerDevice guards the rest. The
	// key is still read, so old files load.
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
	// FailedLogin limits wrong passwords per target account, whatever the
	// client address, so guessing one account's password from many
	// addresses stays slow. Zero values mean 0.17 a second with a burst of
	// 3, as Synapse does. Exempt does not apply.
	FailedLogin Bucket `yaml:"failed_login"`
	// Register limits account creation per client address (IPv6 by /64).
	// Zero values mean 0.17 a second with a burst of 3, as Synapse does.
	// Loopback clients without X-Forwarded-For are not limited.
	Register Bucket `yaml:"register"`

	// Limits per action kind, as Synapse has (rc_message, rc_joins,
	// rc_invites): each counts one kind of action per user, whatever route
	// or device it comes from, and is checked in the package that performs
	// the action (rooms, media), so no second route escapes it. Exempt
	// applies to all of them.

	// Message limits the events a user sends: messages, reactions, edits,
	// redactions and state changes (rooms.Service.Send and Redact). Zero
	// values mean 5 a second with a burst of 100. Synapse's 0.2 a second
	// with a burst of 10 refuses a fast typist and a client flushing the
	// messages it queued while offline; no person keeps up 5 a second for
	// long, while a spamming script is cut to that.
	Message Bucket `yaml:"message"`
	// Join limits the rooms a user joins. Zero values mean 0.1 a second with
	// a burst of 10 (Synapse's rc_joins.local).
	Join Bucket `yaml:"join"`
	// InvitePerRoom limits invites sent in one room, by anyone. Zero values
	// mean 0.3 a second with a burst of 10 (Synapse's rc_invites.per_room).
	InvitePerRoom Bucket `yaml:"invite_per_room"`
	// InvitePerUser limits invites one user receives, from anyone: an
	// invite spam wave to one victim stops at the burst. Zero values mean
	// 0.003 a second (about one every 5.5 minutes) with a burst of 5
	// (Synapse's rc_invites.per_user).
	InvitePerUser Bucket `yaml:"invite_per_user"`
	// CreateRoom limits the rooms a user creates. Zero values mean 0.05 a
	// second (one every 20 s) with a burst of 10: starting a few DMs at
	// once passes, a script filling the database with rooms does not.
	CreateRoom Bucket `yaml:"create_room"`
	// MediaUpload limits a user's media uploads. Zero values mean 1 a
	// second with a burst of 30, enough to send an album of photos at once.
	MediaUpload Bucket `yaml:"media_upload"`
	// PerDevice is a generous flood guard on every other authenticated
	// request of one device (typing, receipts, read markers, to-device,
	// key uploads, reads); /sync is not counted. Zero values mean 50 a
	// second with a burst of 300: a client never meets it in normal use
	// (key sharing in a large room sends a few dozen requests at once),
	// a runaway loop does.
	PerDevice Bucket `yaml:"per_device"`
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
	// MaxWaiting caps the logins waiting for a hashing slot; more get 429
	// M_LIMIT_EXCEEDED at once instead of waiting seconds. Zero value means
	// 8: with the default cost a waiting login then waits at most about
	// eight hashes, a few hundred milliseconds on one core.
	MaxWaiting int `yaml:"max_waiting"`
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
	// FullSync limits each user's initial and full_state syncs, which carry
	// every joined room's whole state and are the costliest request there
	// is. Zero values mean 0.2 a second (one every 5 s) with a burst of 10:
	// a client makes one at start, and a user rarely starts ten at once.
	// Off when rate_limit.enabled is false; rate_limit.exempt applies.
	FullSync Bucket `yaml:"full_sync"`
	// MaxConcurrentFullSyncs caps initial and full_state syncs built at
	// once, server-wide; more wait their turn. It bounds the memory a burst
	// of them takes, and keeps them from taking every CPU. Zero value means 2.
	MaxConcurrentFullSyncs int `yaml:"max_concurrent_full_syncs"`
}

// Writer tunes the room writer, the one goroutine that commits every room
// write in group commits (docs/architecture.md).
type Writer struct {
	// CacheBytes bounds the writer's cache of rooms' current state, by an
	// estimate of the memory it holds; the least recently used rooms are
	// dropped and reloaded from the database when next written. Zero value
	// means 268435456 (256 MiB).
	CacheBytes int64 `yaml:"cache_bytes"`
	// Queue caps the writes waiting for the writer; beyond it every write
	// gets 503 with Retry-After. Zero value means 4096.
	Queue int `yaml:"queue"`
	// QueuePerUser caps one user's waiting writes; beyond it that user gets
	// 429 M_LIMIT_EXCEEDED. Users are served in turn, one write each, so a
	// user's backlog delays only that user. Zero value means 128.
	QueuePerUser int `yaml:"queue_per_user"`
	// BatchEvents caps the events one commit appends, so the commit every
	// waiting write shares stays short; a job costing a quarter of it or
	// more (a big createRoom) commits alone. Zero value means 128.
	BatchEvents int `yaml:"batch_events"`
}

// RoomLimits bound what one createRoom may write and how large a room's
// state may grow.
type RoomLimits struct {
	// MaxInitialState caps createRoom's initial_state events; larger
	// requests get 413 M_TOO_LARGE. Zero value means 50: clients send a
	// handful, and each one lengthens the createRoom's writer job.
	MaxInitialState int `yaml:"max_initial_state"`
	// MaxCreateInvites caps createRoom's invite list. Zero value means 100.
	MaxCreateInvites int `yaml:"max_create_invites"`
	// MaxStateEvents caps a room's state events other than memberships.
	// Zero value means 1000.
	MaxStateEvents int `yaml:"max_state_events"`
	// MaxStateBytes caps the total size of a room's state events other than
	// memberships. Zero value means 4194304 (4 MiB).
	MaxStateBytes int64 `yaml:"max_state_bytes"`
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
	// SlowRequestMs: a request slower than this is logged at warn level
	// with its route, status and request ID (/sync long-polls excepted).
	// Zero value means 2000; a negative value turns the log off.
	SlowRequestMs int `yaml:"slow_request_ms"`
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
	setDefault(&c.RateLimit.FailedLogin.PerSecond, 0.17)
	setDefault(&c.RateLimit.FailedLogin.Burst, 3)
	setDefault(&c.RateLimit.Register.PerSecond, 0.17)
	setDefault(&c.RateLimit.Register.Burst, 3)
	setDefault(&c.RateLimit.Message.PerSecond, 5)
	setDefault(&c.RateLimit.Message.Burst, 100)
	setDefault(&c.RateLimit.Join.PerSecond, 0.1)
	setDefault(&c.RateLimit.Join.Burst, 10)
	setDefault(&c.RateLimit.InvitePerRoom.PerSecond, 0.3)
	setDefault(&c.RateLimit.InvitePerRoom.Burst, 10)
	setDefault(&c.RateLimit.InvitePerUser.PerSecond, 0.003)
	setDefault(&c.RateLimit.InvitePerUser.Burst, 5)
	setDefault(&c.RateLimit.CreateRoom.PerSecond, 0.05)
	setDefault(&c.RateLimit.CreateRoom.Burst, 10)
	setDefault(&c.RateLimit.MediaUpload.PerSecond, 1)
	setDefault(&c.RateLimit.MediaUpload.Burst, 30)
	setDefault(&c.RateLimit.PerDevice.PerSecond, 50)
	setDefault(&c.RateLimit.PerDevice.Burst, 300)
	setDefault(&c.Passwords.MaxWaiting, 8)
	setDefault(&c.HTTP.BodyIdleTimeoutMs, 30000)
	setDefault(&c.HTTP.MaxConnsPerAddress, 100)
	setDefault(&c.ToDevice.MaxMessagesPerRequest, 1000)
	setDefault(&c.ToDevice.RetentionHours, 168)
	c.Envelopes.fillDefaults() // envelopes.go
	c.Channels.fillDefaults()  // channels.go
	c.Moments.fillDefaults()   // moments.go
	setDefault(&c.Sync.MaxTimeoutMs, 60000)
	setDefault(&c.Sync.DefaultTimelineLimit, 10)
	setDefault(&c.Sync.FullSync.PerSecond, 0.2)
	setDefault(&c.Sync.FullSync.Burst, 10)
	setDefault(&c.Sync.MaxConcurrentFullSyncs, 2)
	setDefault(&c.Writer.CacheBytes, 256<<20)
	setDefault(&c.Writer.Queue, 4096)
	setDefault(&c.Writer.QueuePerUser, 128)
	setDefault(&c.Writer.BatchEvents, 128)
	setDefault(&c.RoomLimits.MaxInitialState, 50)
	setDefault(&c.RoomLimits.MaxCreateInvites, 100)
	setDefault(&c.RoomLimits.MaxStateEvents, 1000)
	setDefault(&c.RoomLimits.MaxStateBytes, 4<<20)
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
	setDefault(&c.RoomTiers.LargeAbove, 500)
	setDefault(&c.RoomTiers.HugeAbove, 5000)
	c.FederationInbound.fillDefaults()
	setDefault(&c.DefaultRoomVersion, "12")
	c.Federation.fillDefaults()
	c.Push.fillDefaults()
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

// PublicBaseURLIsDefault reports whether PublicBaseURL is the one derived
// from Listen, that is, not configured: parley doctor then skips its
// reachability check.
func (c Config) PublicBaseURLIsDefault() bool { return c.PublicBaseURL == baseURLFor(c.Listen) }

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
