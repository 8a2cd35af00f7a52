-- Parley schema v7.
-- Unread counts read only the events that notify: a room's joins, state
-- and other quiet events are never scanned for them (storage.UnreadCounts).
CREATE INDEX events_room_notify ON events (room_id, pos) WHERE notify = 1 OR room_mention = 1;
