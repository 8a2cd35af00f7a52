-- Parley schema v40.
-- Broadcast channels (channels/, issue 12). A post is one row whatever the
-- number of followers (read fan-out): channels.seq is the sequence of the
-- newest post, and each follower's channel_reads row holds the sequence
-- read, so the unread count is seq - read_seq. Following itself is a graph
-- edge to the channel ID; the read row mirrors it for the "my channels" join.
CREATE TABLE channels (
    channel_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    avatar_url TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    editors TEXT NOT NULL DEFAULT '[]',
    created_ts BIGINT NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE channel_posts (
    channel_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    post_id TEXT NOT NULL,
    author TEXT NOT NULL,
    content TEXT NOT NULL,
    ts BIGINT NOT NULL,
    edited_ts BIGINT NOT NULL DEFAULT 0,
    retracted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, seq)
);
CREATE UNIQUE INDEX channel_posts_id ON channel_posts (channel_id, post_id);
CREATE TABLE channel_reads (
    user_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX channel_reads_channel ON channel_reads (channel_id);
