-- Parley schema v34.
-- Pushers (GET /pushers, POST /pushers/set) and their delivery queue
-- (package push). A pusher belongs to the device that created it
-- (device_id), and goes with it: DeleteDevices removes it on logout,
-- device deletion and deactivation. id is a number handed out by
-- push_state.next_pusher, never reused, so a queue row never reaches a
-- later pusher that happens to take an old one's place.
CREATE TABLE pushers (
    id                  BIGINT PRIMARY KEY,
    user_id             TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT NOT NULL,
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,
    pushkey_ts          BIGINT NOT NULL,
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_app_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_device ON pushers (user_id, device_id);

-- One row per notification waiting for a pusher, oldest (lowest seq)
-- first. A row is deleted when the gateway accepted it, or dropped when the
-- pusher's queue is over its bound.
CREATE TABLE push_queue (
    pusher_id BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    event_id  TEXT NOT NULL,
    room_id   TEXT NOT NULL,
    pos       BIGINT NOT NULL,
    high      INTEGER NOT NULL,
    tweaks    TEXT NOT NULL,
    unread    BIGINT NOT NULL,
    PRIMARY KEY (pusher_id, seq)
);

-- The push scanner's position in the room logs (every event at or below
-- it has been turned into queue rows) and the next pusher ID. One row.
-- The scan starts at the current end of the log: history is never pushed.
CREATE TABLE push_state (
    id          INTEGER PRIMARY KEY,
    scan_pos    BIGINT NOT NULL,
    next_pusher BIGINT NOT NULL
);
INSERT INTO push_state (id, scan_pos, next_pusher) SELECT 1, COALESCE(MAX(pos), 0), 1 FROM events;

-- The scanner reads the mentions of a range of positions.
CREATE INDEX event_mentions_pos ON event_mentions (pos);
