-- Parley schema v35.
-- Each user's server notices room (admin/notices.go): the room the
-- server-notices account sends notices into, which the user cannot leave.
-- The ID is recorded right after the room is created (version 12 derives
-- it from the create event).
CREATE TABLE server_notice_rooms (
    user_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL UNIQUE
);
