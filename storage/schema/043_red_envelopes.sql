-- Parley schema v43.
-- Red envelopes (package envelopes). state is open, finished (every share
-- claimed) or refunded (expired; the remainder went back to the sender).
-- remaining and remaining_count only go down, through a conditional UPDATE
-- in the transaction that records the claim and moves the money.
CREATE TABLE red_envelopes (
    envelope_id     TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL,
    sender          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    total           BIGINT NOT NULL,
    count           INTEGER NOT NULL,
    remaining       BIGINT NOT NULL,
    remaining_count INTEGER NOT NULL,
    message         TEXT NOT NULL,
    is_dm           INTEGER NOT NULL,
    created_ts      BIGINT NOT NULL,
    expires_ts      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    event_id        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX red_envelopes_expiry ON red_envelopes (state, expires_ts);

-- seq is the claim's place in the envelope (1 = first), for display.
CREATE TABLE red_envelope_claims (
    envelope_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    seq         INTEGER NOT NULL,
    ts          BIGINT NOT NULL,
    PRIMARY KEY (envelope_id, user_id)
);
