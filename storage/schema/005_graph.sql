-- Parley schema v5.
-- The relationship graph (package graph) for the embedded default, when no
-- Neo4j is configured. Every table is keyed so that a repeated write is a
-- no-op, and every list the client API pages through is read in key order.

-- One row per user the graph has touched. It carries the DM policy, and
-- graph writes upsert the rows of both users first: on PostgreSQL that takes
-- their row locks until commit, so two writes about the same users (a
-- request each way, a block racing a follow) run one after the other.
CREATE TABLE graph_users (
    user_id   TEXT PRIMARY KEY,
    dm_policy TEXT NOT NULL DEFAULT 'anyone'
);

CREATE TABLE graph_follows (
    follower TEXT NOT NULL,
    followee TEXT NOT NULL,
    PRIMARY KEY (follower, followee)
);
CREATE INDEX graph_follows_by_followee ON graph_follows (followee, follower);

-- A friendship is stored twice, (a, b) and (b, a), so a user's friends and
-- the friends of friends are one index range each.
CREATE TABLE graph_friends (
    user_id   TEXT NOT NULL,
    friend_id TEXT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE graph_blocks (
    blocker TEXT NOT NULL,
    blocked TEXT NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
CREATE INDEX graph_blocks_by_blocked ON graph_blocks (blocked, blocker);

-- Pending friend requests only: answering one deletes it. At most one per
-- direction; the rules in package graph keep it at most one per pair.
CREATE TABLE graph_friend_requests (
    request_id TEXT PRIMARY KEY,
    from_user  TEXT NOT NULL,
    to_user    TEXT NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    ts         BIGINT NOT NULL,
    UNIQUE (from_user, to_user)
);
CREATE INDEX graph_friend_requests_in ON graph_friend_requests (to_user, ts, request_id);
CREATE INDEX graph_friend_requests_out ON graph_friend_requests (from_user, ts, request_id);
