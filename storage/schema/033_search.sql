-- Search index (issue 14): one row per event whose text /search finds:
-- m.room.message (content.body), m.room.name (content.name) and
-- m.room.topic (content.topic). text is the lowercased text, tokens its
-- index tokens (storage/searchtext: words, and characters and character
-- pairs of CJK runs). The full-text index over tokens differs per engine
-- and is made in Go after the migrations (Store.ensureSearchIndex): an
-- FTS5 table on SQLite, a GIN index over to_tsvector('simple', tokens) on
-- PostgreSQL. The writer fills the table next to the event; events stored
-- before this migration are indexed once at the next start
-- (Store.BackfillSearch), from the range recorded in search_backfill.
CREATE TABLE search_docs (
    pos      BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id  TEXT NOT NULL,
    sender   TEXT NOT NULL,
    type     TEXT NOT NULL,
    text     TEXT NOT NULL,
    tokens   TEXT NOT NULL
);
CREATE INDEX search_docs_room ON search_docs (room_id, pos);
CREATE TABLE search_backfill (
    id       INTEGER PRIMARY KEY,
    next_pos BIGINT NOT NULL,
    upto     BIGINT NOT NULL
);
INSERT INTO search_backfill (id, next_pos, upto) SELECT 1, 0, COALESCE(MAX(pos), 0) FROM events;
