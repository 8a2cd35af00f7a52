-- Parley schema v46.
-- Channel news in /sync (issue 12): every post, edit and retraction takes
-- a position on the channel stream (inbox/channels.go). channels.news_pos is
-- the channel's newest change, loaded at start so a sync finds channels with
-- news in memory; channel_posts.stream_pos lets a sync fetch just the posts
-- changed since its token, so an edit or a retraction reaches devices that
-- already have the post.
ALTER TABLE channels ADD COLUMN news_pos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channel_posts ADD COLUMN stream_pos BIGINT NOT NULL DEFAULT 0;
CREATE INDEX channel_posts_stream ON channel_posts (channel_id, stream_pos);
