-- Parley schema v6.
-- Customer-service desks (package desks): a desk's settings, its agents and
-- its consultations. The desks service keeps a live model of each desk in
-- memory and writes every decision here before it acts on it, so these rows
-- are the truth it reloads at start. Lists (categories, skills) are JSON
-- arrays in TEXT, like the rest of the schema.
CREATE TABLE desks (
    desk_id         TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    categories      TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    capacity        INTEGER NOT NULL,
    reply_timeout_s INTEGER NOT NULL,
    service_user    TEXT NOT NULL,
    created_ts      BIGINT NOT NULL
);

-- capacity 0 means the desk's default. last_assigned_ts breaks least_busy
-- ties: the agent idle longest (oldest last assignment) goes first.
CREATE TABLE desk_agents (
    desk_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    skills           TEXT NOT NULL,
    capacity         INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    last_assigned_ts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (desk_id, user_id)
);

-- state is queued, assigned or closed. queue_seq orders the queue: new
-- entries take the next number up, re-routed ones the next number down, so
-- they go to the front. agent is the current agent (the last one once
-- closed); preferred_agent is the customer's previous agent, for sticky
-- routing. Times are Unix milliseconds; 0 means not yet.
CREATE TABLE desk_consultations (
    consultation_id TEXT PRIMARY KEY,
    desk_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    customer        TEXT NOT NULL,
    category        TEXT NOT NULL,
    state           TEXT NOT NULL,
    agent           TEXT NOT NULL DEFAULT '',
    preferred_agent TEXT NOT NULL DEFAULT '',
    queue_seq       BIGINT NOT NULL DEFAULT 0,
    opened_ts       BIGINT NOT NULL,
    queued_ts       BIGINT NOT NULL DEFAULT 0,
    assigned_ts     BIGINT NOT NULL DEFAULT 0,
    first_reply_ts  BIGINT NOT NULL DEFAULT 0,
    closed_ts       BIGINT NOT NULL DEFAULT 0,
    closed_by       TEXT NOT NULL DEFAULT '',
    rating          INTEGER NOT NULL DEFAULT 0,
    reroutes        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX desk_consultations_state ON desk_consultations (state, desk_id);
CREATE INDEX desk_consultations_customer ON desk_consultations (desk_id, customer, opened_ts);
CREATE INDEX desk_consultations_agent ON desk_consultations (desk_id, agent, closed_ts);
