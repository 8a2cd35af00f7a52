package config

// Sample returns a complete configuration file: every key, set to its
// default, with a line on why one would change it. Loading it gives exactly
// Default(); tests hold it to that, so it cannot drift from the code.
func Sample() string {
	return `# Parley configuration. Every key is shown at its default; delete the ones
# you leave alone. PARLEY_* environment variables, where named, override this
# file. Keys not listed here are an error, so a typo cannot go unnoticed.

# The domain in user IDs (@alice:example.org) and room aliases. It cannot
# change once users exist. Env: PARLEY_SERVER_NAME.
server_name: localhost

# Address the HTTP server binds; loopback by default, for use behind a
# reverse proxy. Env: PARLEY_LISTEN.
listen: 127.0.0.1:8008

# The URL clients reach this server at, advertised in
# /.well-known/matrix/client. Empty means http:// + listen (with localhost
# for 0.0.0.0 or [::]). Env: PARLEY_PUBLIC_BASE_URL.
public_base_url: ""

# Where the SQLite database, media and the signing key live. Back it up.
# Env: PARLEY_DATA_DIR.
data_dir: ./parley-data

# Empty means SQLite at <data_dir>/parley.db; a postgres:// URL (for example
# postgres://parley:secret@localhost/parley) means PostgreSQL, for larger
# servers. Env: PARLEY_DATABASE_URL.
database_url: ""

registration:
  # Who may create an account: closed (only an admin), open (anyone), or
  # token (anyone with a registration token). Env: PARLEY_REGISTRATION.
  mode: closed
  # Registration tokens accepted in token mode: 1 to 64 of A-Z a-z 0-9 . _ ~ -
  # Tokens in the database's registration_tokens table count too.
  tokens: []
  # Reserved for a shared-secret registration endpoint Parley does not
  # serve yet; unused. Create accounts with "parley user add".
  shared_secret: ""

media:
  # Largest upload accepted, in bytes (50 MiB): photos and short videos,
  # without letting one user fill the disk in a few requests.
  max_upload_bytes: 52428800
  # Thumbnail limits; 0 means the default. Over a cap the client gets
  # 413 (no thumbnail) and no CPU is spent; over the queue, 429.
  thumbnail_max_pixels: 0        # 32000000
  thumbnail_max_decode_bytes: 0  # 268435456 (256 MiB) per decode
  thumbnail_max_jpeg_scans: 0    # 32
  thumbnail_concurrency: 0       # 1 decode at a time
  thumbnail_queue: 0             # 16 waiting
  # Media bytes each user may store (0: no quota); past it, uploads get
  # 403 M_RESOURCE_LIMIT_EXCEEDED with admin_contact.
  quota_bytes: 0
  admin_contact: ""

rate_limit:
  # false turns all request rate limits off.
  enabled: true
  # Deprecated and ignored (it was one bucket for every request of a
  # user); see the per-action limits and per_device below.
  per_user:
    per_second: 10
    burst: 50
  # Each client address, which is what limits login and registration.
  # Higher than per_user because users may share an address. Loopback
  # clients (a reverse proxy on this host) are not limited per address.
  per_ip:
    per_second: 20
    burst: 100
  # User IDs never limited, such as bridges and bots.
  exempt: []
  # Wrong passwords per target account, whatever the address (as Synapse).
  failed_login:
    per_second: 0.17
    burst: 3
  # Accounts created per client address (as Synapse).
  register:
    per_second: 0.17
    burst: 3
  # Per action kind, per user, whatever the route or device (as Synapse's
  # rc_message, rc_joins, rc_invites). exempt applies.
  # Events sent: messages, reactions, edits, redactions, state changes.
  message:
    per_second: 5
    burst: 100
  # Rooms joined (Synapse's rc_joins.local).
  join:
    per_second: 0.1
    burst: 10
  # Invites sent in one room, and received by one user (Synapse's).
  invite_per_room:
    per_second: 0.3
    burst: 10
  invite_per_user:
    per_second: 0.003
    burst: 5
  # Rooms created.
  create_room:
    per_second: 0.05
    burst: 10
  # Media uploads.
  media_upload:
    per_second: 1
    burst: 30
  # Flood guard on every other authenticated request of one device
  # (typing, receipts, read markers, to-device, key uploads); not /sync.
  per_device:
    per_second: 50
    burst: 300

passwords:
  # Password hashes run at once; further logins wait. 0 means one less than
  # the CPUs this process may use (at least 1), so delivery keeps a CPU.
  # Peak memory is concurrency * argon2_memory_kib.
  concurrency: 0
  # argon2id cost per hash (OWASP's recommendation: 19 MiB, 2 passes).
  # Raise both for more resistance to offline guessing, at login latency.
  argon2_memory_kib: 19456
  argon2_time: 2
  # Logins waiting for a hashing slot; more get 429 at once.
  max_waiting: 8

sync:
  # Longest a /sync long-poll waits, whatever the client asks; keep it under
  # your reverse proxy's read timeout.
  max_timeout_ms: 60000
  # Events per room when the client's filter sets no limit (as Synapse).
  default_timeline_limit: 10
  # Each user's initial and full_state syncs (the costliest request):
  # tokens regained a second, and bucket size. Off with rate_limit.
  full_sync:
    per_second: 0.2
    burst: 10
  # Initial and full_state syncs built at once, server-wide; more wait.
  max_concurrent_full_syncs: 2

graph:
  # Neo4j for the relationship graph (friends, follows, blocks). Empty keeps
  # the graph in the main store (SQLite or PostgreSQL).
  # Env: PARLEY_NEO4J_URL.
  neo4j_url: ""
  neo4j_user: ""
  neo4j_password: ""

log:
  # debug, info, warn or error. Env: PARLEY_LOG_LEVEL.
  level: info
  # text for people, json for log collectors.
  format: text
  # Requests slower than this are logged at warn (0: 2000; negative: off).
  slow_request_ms: 0

writer:
  # Memory bound (estimated) of the writer's cache of room state (256 MiB);
  # least recently used rooms are dropped and reloaded when next written.
  cache_bytes: 268435456
  # Writes waiting for the writer; beyond it writes get 503 + Retry-After.
  queue: 4096
  # One user's waiting writes; beyond it that user gets 429.
  queue_per_user: 128
  # Events one commit appends at most; a write of a quarter of it or more
  # (a big createRoom) commits alone.
  batch_events: 128

room_limits:
  # createRoom's initial_state events and invites at most.
  max_initial_state: 50
  max_create_invites: 100
  # A room's state events other than memberships: count and total bytes.
  max_state_events: 1000
  max_state_bytes: 4194304

http:
  # Longest wait for the next bytes of a request body; slower clients are
  # cut off.
  body_idle_timeout_ms: 30000
  # Open connections per client address (IPv6 by /64).
  max_conns_per_address: 100
  # true caps loopback clients too; behind a reverse proxy on this host,
  # leave it false and cap connections at the proxy.
  limit_loopback: false

to_device:
  # Devices one sendToDevice may reach ("*" expanded); more get 413.
  max_messages_per_request: 1000
  # Hours an undelivered to-device message is kept.
  retention_hours: 168

# Version of rooms created without one: 10, 11 or 12.
# Env: PARLEY_DEFAULT_ROOM_VERSION.
default_room_version: "12"

room_tiers:
  # Above this many joined members a room is "large": typing and receipts
  # reach only their sender's own devices, members' presence is not sent to
  # the room, and sync lazy-loads its members.
  large_above: 500
  # Above this many joined members a room is "huge".
  huge_above: 5000
  # Joined members any room may have; 0 means no cap.
  max_members: 0
  # In a huge room, only moderators (power level 50+) may send messages.
  huge_moderators_only: false

# What other servers may push through /_matrix/federation/v1/send.
federation_inbound:
  # Bytes of one transaction body; more get 413.
  max_body_bytes: 8388608
  # Transactions one origin server may start a second, and its burst;
  # more get 429. A negative origin_per_second turns the limit off.
  origin_per_second: 50
  origin_burst: 100
  # Rooms whose incoming events are processed at once, server-wide.
  max_rooms: 8
  # Events asked for at once when a PDU's prev events are missing (10-20).
  missing_events_limit: 20
  # Events fetched one by one to fill a deeper gap; more lacking, and the
  # whole state comes in one /state request.
  max_fetched_events: 10
  # Hours the answer to a transaction is kept for retries.
  txn_log_hours: 24

federation:
  # host:port of the federation listener (TLS), apart from the client one,
  # e.g. 0.0.0.0:8448. Empty means federation is off.
  # Env: PARLEY_FEDERATION_LISTEN.
  listen: ""
  # PEM certificate and key for the federation listener. Both empty means a
  # self-signed pair in data_dir, for tests only.
  # Env: PARLEY_FEDERATION_TLS_CERT, PARLEY_FEDERATION_TLS_KEY.
  tls_cert: ""
  tls_key: ""
  # Comma-separated CIDRs outbound federation may dial although loopback or
  # private (refused by default against SSRF). Env: PARLEY_FEDERATION_ALLOW_IPS.
  allow_ips: ""
  # UNSAFE: skip TLS certificate checks on outbound federation. Loopback
  # tests only. Env: PARLEY_FEDERATION_INSECURE_SKIP_VERIFY.
  insecure_skip_verify: false
  # Served as m.server at /.well-known/matrix/server, e.g.
  # matrix.example.org:443. Empty means none.
  well_known_server: ""
  # Comma-separated servers asked for other servers' keys first (notaries).
  key_notaries: ""
  # Hours this server's published signing keys are valid.
  key_validity_hours: 24
  # Outbound retry backoff to a failed destination, in milliseconds:
  # starts at retry_min_ms, doubles per failure, capped at retry_max_ms.
  retry_min_ms: 2000
  retry_max_ms: 3600000

# Delivery to push gateways (pushers of kind http).
push:
  # Comma-separated CIDRs push delivery may dial although loopback or
  # private (refused by default against SSRF).
  allow_ips: ""
  # Notifications waiting per pusher; past it the oldest is dropped.
  max_queue: 1000
  # Wait after a gateway's first failure (doubles per failure, ±50 % jitter).
  min_backoff_ms: 1000
  # Longest wait between retries.
  max_backoff_ms: 600000
  # Time one request to a gateway may take.
  timeout_ms: 10000
  # Pushers one user may have.
  max_pushers_per_user: 100

envelopes:
  # The one currency (ISO 4217); amounts are integers in its minor unit.
  currency: CNY
  # Largest total of one red envelope, in minor units.
  max_total: 20000
  # Largest number of shares of one envelope.
  max_count: 100
  # Envelopes one user may send a minute.
  per_minute: 10
  # Seconds an envelope may be claimed before the remainder is refunded.
  expiry_seconds: 86400
  # How often the sweeper looks for expired envelopes.
  sweep_interval_ms: 60000

# Broadcast channels (docs/channels.md).
channels:
  # Largest post: text, image URIs and links together.
  max_post_bytes: 16384
  # New posts one channel may take a minute; more get 429.
  posts_per_minute: 60
  # New comments one user may write a minute; more get 429.
  comments_per_minute: 20

# Moments (docs/moments.md).
moments:
  # hybrid: a post of an author with at most push_max_friends friends is
  # written to each friend's feed inbox, a bigger author's is read at read
  # time; read: always at read time; write: always to inboxes.
  fanout: hybrid
  push_max_friends: 1000
  # Friends read for one feed or post.
  max_friends: 5000
  # Largest post: text and image URIs together.
  max_post_bytes: 16384
  # New posts one author may make a minute; more get 429.
  posts_per_minute: 10
  # Comments and replies one user may write a minute; more get 429.
  comments_per_minute: 30
`
}
