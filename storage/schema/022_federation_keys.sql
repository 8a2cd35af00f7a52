-- Parley schema v22: federation signing keys.
-- federation_own_keys lists every signing key this server has used. The
-- current one has no expired_ts; a retired one keeps the time it stopped
-- being used, so /_matrix/key/v2/server can list it in old_verify_keys and
-- remote servers can still check events it signed.
CREATE TABLE federation_own_keys (
    key_id     TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    expired_ts BIGINT
);
-- federation_remote_keys caches other servers' verify keys, one row per key.
-- valid_until_ts is what the server published; fetched_ts lets a reader cap
-- validity at fetch + 7 days (room versions 5 and later). expired_ts is set
-- for keys that came in old_verify_keys.
CREATE TABLE federation_remote_keys (
    server_name    TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts     BIGINT,
    fetched_ts     BIGINT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
-- federation_key_responses keeps the last self-signed key response of each
-- server as received, byte for byte, so this server can answer notary
-- queries (/_matrix/key/v2/query) with the origin's own signature intact.
CREATE TABLE federation_key_responses (
    server_name    TEXT PRIMARY KEY,
    response       TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    fetched_ts     BIGINT NOT NULL
);
