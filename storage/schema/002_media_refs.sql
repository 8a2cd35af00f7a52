-- Parley schema v2: which room messages refer to which local media, so that
-- media posted in a private room is served only to those who may read the
-- message that carries it.
CREATE TABLE media_refs (
    media_id TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    pos      BIGINT NOT NULL,
    PRIMARY KEY (media_id, room_id, pos)
);
