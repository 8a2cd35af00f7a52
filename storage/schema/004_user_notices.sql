-- Parley schema v4.
-- Per-user notices: Parley's own events for one user that belong to no room
-- (a friend request arrived, a request was accepted, a new follower). They
-- take stream positions from the writer like everything else, so /sync
-- delivers them to every device with the same since tokens.
CREATE TABLE user_notices (
    pos     BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    type    TEXT NOT NULL,
    content TEXT NOT NULL,
    ts      BIGINT NOT NULL
);
CREATE INDEX user_notices_by_user ON user_notices (user_id, pos);
