-- Parley schema v28.
-- The answers to inbound federation transactions (PUT
-- /_matrix/federation/v1/send/{txnId}) by origin and transaction ID, so
-- that a transaction retried after a restart gets its first answer and is
-- not processed again: its EDUs (to-device messages) are not delivered
-- twice. Rows older than the retention go (DeleteFederationTxnsBefore).
CREATE TABLE federation_txns (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_txns_ts ON federation_txns (ts);
