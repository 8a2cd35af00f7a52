-- Parley schema v32.
-- Rooms an operator blocked: no local user may join or send in them. The
-- room writer loads the set at start and keeps it in memory.
CREATE TABLE blocked_rooms (
    room_id    TEXT PRIMARY KEY,
    blocked_by TEXT NOT NULL,
    ts         BIGINT NOT NULL
);
