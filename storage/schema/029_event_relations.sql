-- Relations index (issue 14): one row per event whose content carries
-- m.relates_to with an event_id and a rel_type. The writer fills it next to
-- the event (WriteTx.InsertEvent). Events stored before this migration are
-- indexed once at the next start, in Go (Store.BackfillRelations), from the
-- range recorded in relations_backfill: reading JSON differs between SQLite
-- and PostgreSQL, and the schema files keep one SQL for both.
CREATE TABLE event_relations (
    event_id      TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL,
    relates_to_id TEXT NOT NULL,
    rel_type      TEXT NOT NULL,
    type          TEXT NOT NULL,
    sender        TEXT NOT NULL,
    pos           BIGINT NOT NULL
);
CREATE INDEX event_relations_parent ON event_relations (relates_to_id, pos);
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, pos);
CREATE TABLE relations_backfill (
    id       INTEGER PRIMARY KEY,
    next_pos BIGINT NOT NULL,
    upto     BIGINT NOT NULL
);
INSERT INTO relations_backfill (id, next_pos, upto) SELECT 1, 0, COALESCE(MAX(pos), 0) FROM events;
