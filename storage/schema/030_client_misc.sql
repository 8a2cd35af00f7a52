-- Parley schema v30.
-- Content reports (POST /rooms/{roomId}/report[/{eventId}]): kept for the
-- operators to read (issue 16). event_id is '' for a report of a room.
-- report_id is random text made by the server, so the same SQL serves
-- SQLite and PostgreSQL.
CREATE TABLE event_reports (
    report_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_sender TEXT NOT NULL,
    reporter TEXT NOT NULL,
    reason TEXT NOT NULL,
    score INTEGER,
    ts BIGINT NOT NULL
);
CREATE INDEX event_reports_ts ON event_reports (ts, report_id);
CREATE INDEX event_reports_reporter ON event_reports (reporter, ts);

-- OpenID tokens (POST /user/{userId}/openid/request_token), stored as the
-- SHA-256 of the token, each with its expiry in ms. Expired rows are never
-- answered and are deleted (DeleteExpiredOpenIDTokens).
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expires ON openid_tokens (expires_ts);
CREATE INDEX openid_tokens_user ON openid_tokens (user_id, expires_ts);

-- GET /rooms/{roomId}/timestamp_to_event finds the event nearest a time
-- (EventsByTS) without scanning the room.
CREATE INDEX events_room_ts ON events (room_id, origin_ts, pos);
