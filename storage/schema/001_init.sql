-- Parley schema v1. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
-- Flags are INTEGER 0/1, JSON is TEXT, positions are BIGINT assigned by the
-- single writer (never by the database), so both engines order identically.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL DEFAULT '',
    is_admin      INTEGER NOT NULL DEFAULT 0,
    displayname   TEXT NOT NULL DEFAULT '',
    avatar_url    TEXT NOT NULL DEFAULT '',
    created_ts    BIGINT NOT NULL,
    deactivated   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL UNIQUE,
    created_ts   BIGINT NOT NULL,
    last_seen_ts BIGINT NOT NULL DEFAULT 0,
    last_seen_ip TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE rooms (
    room_id      TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator      TEXT NOT NULL,
    published    INTEGER NOT NULL DEFAULT 0,
    created_ts   BIGINT NOT NULL
);

-- The room logs. pos is the server-wide stream position; within a room it is
-- also the room's order (depth rises with it on a single node).
CREATE TABLE events (
    pos          BIGINT PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    room_id      TEXT NOT NULL,
    type         TEXT NOT NULL,
    state_key    TEXT,
    sender       TEXT NOT NULL,
    depth        BIGINT NOT NULL,
    origin_ts    BIGINT NOT NULL,
    membership   TEXT,
    pdu          TEXT NOT NULL,
    client       TEXT NOT NULL,
    unsigned     TEXT NOT NULL DEFAULT '',
    txn_device   TEXT NOT NULL DEFAULT '',
    txn_id       TEXT NOT NULL DEFAULT '',
    redacted_by  TEXT NOT NULL DEFAULT '',
    notify       INTEGER NOT NULL DEFAULT 0,
    room_mention INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_room_pos ON events (room_id, pos);
CREATE INDEX events_state ON events (room_id, type, state_key, pos);

-- Users a message mentions (m.mentions.user_ids): the per-user highlight
-- exceptions to the room-wide notify counter.
CREATE TABLE event_mentions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    pos     BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, pos)
);

-- Permanent idempotency keys for sends: (user, device, txnId) -> event.
CREATE TABLE txns (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE current_state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    pos       BIGINT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

CREATE TABLE memberships (
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    pos        BIGINT NOT NULL,
    event_id   TEXT NOT NULL,
    sender     TEXT NOT NULL,
    forgotten  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, membership);
CREATE INDEX memberships_user_pos ON memberships (user_id, pos);

CREATE TABLE room_aliases (
    alias   TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE receipts (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id    TEXT NOT NULL DEFAULT '',
    event_id     TEXT NOT NULL,
    event_pos    BIGINT NOT NULL,
    ts           BIGINT NOT NULL,
    pos          BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_pos ON receipts (pos);

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type    TEXT NOT NULL,
    content TEXT NOT NULL,
    pos     BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_pos ON account_data (user_id, pos);

CREATE TABLE to_device (
    pos       BIGINT PRIMARY KEY,
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    sender    TEXT NOT NULL,
    type      TEXT NOT NULL,
    content   TEXT NOT NULL
);
CREATE INDEX to_device_target ON to_device (user_id, device_id, pos);

CREATE TABLE presence (
    user_id        TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    status_msg     TEXT NOT NULL DEFAULT '',
    last_active_ts BIGINT NOT NULL,
    pos            BIGINT NOT NULL
);
CREATE INDEX presence_pos ON presence (pos);

CREATE TABLE device_list_changes (
    pos     BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL
);

CREATE TABLE filters (
    user_id   TEXT NOT NULL,
    filter_id TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE push_rules (
    user_id TEXT PRIMARY KEY,
    rules   TEXT NOT NULL
);

CREATE TABLE e2e_device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE e2e_one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    fallback  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, key_id)
);

CREATE TABLE e2e_cross_signing (
    user_id  TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed BIGINT,
    completed    BIGINT NOT NULL DEFAULT 0,
    expiry_ts    BIGINT
);
