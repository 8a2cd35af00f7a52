-- Parley schema v45.
-- The search index is filled behind the writer, not inside each send's
-- transaction (rooms/searchindex.go): indexed_pos is the stream position up
-- to which every event is in search_docs. Everything stored before this
-- migration was indexed inline, so the index starts caught up.
CREATE TABLE search_progress (
    id          INTEGER PRIMARY KEY,
    indexed_pos BIGINT NOT NULL
);
INSERT INTO search_progress (id, indexed_pos) SELECT 1, COALESCE(MAX(pos), 0) FROM events;
