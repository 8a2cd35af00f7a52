-- Parley schema v48.
-- Channel likes and comments (channels/social.go, issue 12). A like is one
-- row per (post, user), so liking twice changes nothing; a comment is one
-- row keyed by the post's comment sequence, so a page of comments is a
-- range of the primary key. channel_posts keeps the like and comment counts
-- (bumped in the same transaction) so the post list carries them without a
-- count per post. channels.comments_off is the owner's switch.
ALTER TABLE channels ADD COLUMN comments_off INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channel_posts ADD COLUMN like_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channel_posts ADD COLUMN comment_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channel_posts ADD COLUMN comment_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE channel_likes (
    channel_id TEXT NOT NULL,
    post_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (channel_id, post_id, user_id)
);
CREATE TABLE channel_comments (
    channel_id TEXT NOT NULL,
    post_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    comment_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (channel_id, post_id, seq)
);
CREATE UNIQUE INDEX channel_comments_id ON channel_comments (channel_id, comment_id);
