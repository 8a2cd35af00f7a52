-- Parley schema v3.
-- The highest stream position ever assigned. Positions must never be
-- reused, even when the row that held the newest one is deleted (delivered
-- to-device messages are), because clients hold them in sync tokens.
CREATE TABLE stream_watermark (
    id  INTEGER PRIMARY KEY,
    pos BIGINT NOT NULL
);
-- A fallback key stays after it is claimed, but is reported as used so the
-- device uploads a new one.
ALTER TABLE e2e_one_time_keys ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
