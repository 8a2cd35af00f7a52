-- Parley schema v49.
-- A deleted channel is gone at once for every reader (channels.deleting =
-- 1 hides it) while a background job ends its follows a page at a time
-- and then drops its rows (channels/deletions.go): a channel with a
-- million followers is not one request's work. A restart resumes the job.
ALTER TABLE channels ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
