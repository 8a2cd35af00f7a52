-- Parley schema v23: the outbound federation queue (federation/outbound).
-- The room logs (events) are the queue's PDU rows: nothing is copied per
-- destination. A destination catches up by reading the events of its rooms
-- after its cursor.

-- When each remote server was in each room: from the event that gave it its
-- first joined user (joined_pos) to the event that left it with none
-- (left_pos; 0 = still in). A PDU goes to the servers whose span holds its
-- position, so a server gets neither history from before it joined nor
-- events after it left.
CREATE TABLE fed_room_servers (
    server_name TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    joined_pos  BIGINT NOT NULL,
    left_pos    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_name, room_id, joined_pos)
);
CREATE INDEX fed_room_servers_open ON fed_room_servers (left_pos, room_id);

-- One row per destination: what it has acknowledged, and the transaction
-- in flight (its ID stays the same across retries and restarts).
CREATE TABLE fed_destinations (
    destination TEXT PRIMARY KEY,
    sent_pos    BIGINT NOT NULL,
    sent_edu    BIGINT NOT NULL DEFAULT 0,
    txn_id      TEXT NOT NULL DEFAULT '',
    txn_pos     BIGINT NOT NULL DEFAULT 0,
    txn_edu     BIGINT NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    retry_at_ts BIGINT NOT NULL DEFAULT 0
);

-- Durable EDUs (to-device, device-list and signing-key updates) waiting for
-- a destination; deleted once it acknowledges them.
CREATE TABLE fed_edus (
    destination TEXT NOT NULL,
    id          BIGINT NOT NULL,
    edu_type    TEXT NOT NULL,
    content     TEXT NOT NULL,
    PRIMARY KEY (destination, id)
);

-- How far the queue has read the room logs into fed_room_servers (one row).
-- It starts at the end of the existing logs: before this schema no remote
-- user could be a member, so an upgraded server skips reading its history.
CREATE TABLE fed_scan (
    id  INTEGER PRIMARY KEY,
    pos BIGINT NOT NULL
);
INSERT INTO fed_scan (id, pos) SELECT 1, COALESCE(MAX(pos), 0) FROM events;

-- Events of remote users that this server must send on their server's
-- behalf: those it accepted as the resident server through send_join,
-- send_leave or send_knock (the joining server does not know the room's
-- other servers). They go to every server in the room but origin. Written
-- by the room writer in the event's own transaction.
CREATE TABLE fed_on_behalf (
    pos    BIGINT PRIMARY KEY,
    origin TEXT NOT NULL
);
