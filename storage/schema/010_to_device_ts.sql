-- Parley schema v10.
-- When each to-device message was queued (ms), so undelivered ones can be
-- deleted after a retention period (storage.DeleteExpiredToDevice). Rows
-- from before this version have ts 0: the first sweep stamps them with its
-- own time, so they still get a full retention period.
ALTER TABLE to_device ADD COLUMN ts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX to_device_ts ON to_device (ts);
