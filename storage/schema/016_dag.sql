-- Parley schema v16: rooms as DAGs (docs/architecture.md, "Rooms as DAGs").

-- The DAG's edges: an event's prev_events and auth_events, as columns of
-- its own row (events and unlisted_events: prev_ids, auth_ids, space-
-- separated event IDs). Nothing reads edges in reverse yet, so a table of
-- their own, with the index that would make it useful, would only add pages
-- to every send's commit; the migration that first needs "the children of
-- an event" adds that index. Events written before v16 get both from their
-- stored PDU when the store opens (storage/upgrade.go).
ALTER TABLE events ADD COLUMN prev_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN auth_ids TEXT NOT NULL DEFAULT '';

-- A room's forward extremities: the events no accepted event references
-- yet, which a new local event lists as its prev_events. They are a column
-- of the room's row ("<depth> <event_id>" pairs, space-separated, deepest
-- first): a send rewrites one row, which costs its commit one page, where a
-- table of its own cost two (its rows and its key's index).
ALTER TABLE rooms ADD COLUMN extremities TEXT NOT NULL DEFAULT '';
-- A room written before v16 is a single chain: its latest event is its only
-- extremity.
UPDATE rooms SET extremities = COALESCE((SELECT CAST(e.depth AS TEXT) || ' ' || e.event_id FROM events e
    WHERE e.room_id = rooms.room_id ORDER BY e.pos DESC LIMIT 1), '');

-- Events users never see: outliers (no position), rejected events (kept
-- with their reason, never used for state) and soft-failed events (kept,
-- with the state after them, but not shown and never extremities). They
-- live apart from events, so no client read can return them.
CREATE TABLE unlisted_events (
    event_id    TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    depth       BIGINT NOT NULL,
    state_group BIGINT NOT NULL DEFAULT 0,
    prev_ids    TEXT NOT NULL DEFAULT '',
    auth_ids    TEXT NOT NULL DEFAULT '',
    pdu         TEXT NOT NULL,
    received_ts BIGINT NOT NULL
);
CREATE INDEX unlisted_events_room ON unlisted_events (room_id, kind);

-- The state group holding the room state after each event; 0 for events
-- written before v16, whose (linear) history still answers by position.
ALTER TABLE events ADD COLUMN state_group BIGINT NOT NULL DEFAULT 0;
-- Topological order for /messages and /context: (depth, stream position).
CREATE INDEX events_room_topo ON events (room_id, depth, pos);

-- The group whose state is the room's current state (0: none yet).
ALTER TABLE rooms ADD COLUMN state_group BIGINT NOT NULL DEFAULT 0;

-- State groups. A group is either a full snapshot (parent 0, snapshot a
-- JSON object {type: {state_key: event_id}}) or a delta on its parent
-- (rows in state_group_deltas; event_id '' removes a key). hops counts the
-- deltas back to the nearest snapshot; the writer snapshots at 100.
CREATE TABLE state_groups (
    group_id BIGINT PRIMARY KEY,
    room_id  TEXT NOT NULL,
    parent   BIGINT NOT NULL,
    hops     INTEGER NOT NULL,
    snapshot TEXT NOT NULL DEFAULT ''
);
CREATE TABLE state_group_deltas (
    group_id  BIGINT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

-- Every change to a room's current (resolved) state, by stream position:
-- what a sync "since T" reports, even when resolution picks an older event
-- or drops a key (event_id '').
CREATE TABLE current_state_deltas (
    pos       BIGINT NOT NULL,
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, pos, type, state_key)
);
-- Before v16 current state changed with each state event, in log order.
INSERT INTO current_state_deltas (pos, room_id, type, state_key, event_id)
    SELECT pos, room_id, type, state_key, event_id FROM events WHERE state_key IS NOT NULL AND pos > 0;
