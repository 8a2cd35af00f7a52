-- Parley schema v47.
-- Moments (朋友圈, moments/, issue 12). One counter orders posts, comments
-- and notifications. A post is one row (read fan-out: a feed merges the
-- friends' posts at read time on moments_posts_author); with write fan-out
-- each post also gets a moments_inbox row per friend who may see it
-- (pushed = 1); the hybrid pushes posts of users with few friends and
-- leaves the others to be pulled.
-- Friendship is not stored here: it is checked against the graph at read
-- time, so unfriending hides past posts too.
CREATE TABLE moments_counter (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO moments_counter (id, seq) VALUES (1, 0);
CREATE TABLE moments_posts (
    seq BIGINT PRIMARY KEY,
    post_id TEXT NOT NULL,
    author TEXT NOT NULL,
    content TEXT NOT NULL,
    visibility TEXT NOT NULL,
    users TEXT NOT NULL DEFAULT '[]',
    ts BIGINT NOT NULL,
    pushed INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX moments_posts_id ON moments_posts (post_id);
CREATE INDEX moments_posts_author ON moments_posts (author, seq);
CREATE INDEX moments_posts_pulled ON moments_posts (author) WHERE pushed = 0;
CREATE TABLE moments_likes (
    post_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);
CREATE TABLE moments_comments (
    seq BIGINT PRIMARY KEY,
    comment_id TEXT NOT NULL,
    post_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    reply_to TEXT NOT NULL DEFAULT '',
    reply_to_user TEXT NOT NULL DEFAULT '',
    ts BIGINT NOT NULL
);
CREATE UNIQUE INDEX moments_comments_id ON moments_comments (comment_id);
CREATE INDEX moments_comments_post ON moments_comments (post_id, seq);
CREATE TABLE moments_notifications (
    seq BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    post_id TEXT NOT NULL,
    from_user TEXT NOT NULL,
    comment_id TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    ts BIGINT NOT NULL
);
CREATE INDEX moments_notifications_user ON moments_notifications (user_id, seq);
CREATE INDEX moments_notifications_post ON moments_notifications (post_id);
CREATE TABLE moments_reads (
    user_id TEXT PRIMARY KEY,
    feed_seq BIGINT NOT NULL DEFAULT 0,
    notes_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE moments_inbox (
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX moments_inbox_seq ON moments_inbox (seq);
