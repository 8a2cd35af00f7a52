-- Parley schema v42.
-- The wallet's double-entry ledger (package wallet). Amounts are integers in
-- minor units of the one currency the deployment is configured with.
-- A movement (wallet_txns) is keyed by its idempotency key and owns
-- postings that sum to zero; balances are kept in wallet_accounts in the
-- same transaction, so the sum of all balances is always zero. Accounts
-- named "user:..." and "escrow:..." never go below zero (a conditional
-- UPDATE refuses); "external:..." accounts are the providers' side of
-- top-ups and withdrawals and may be negative.
CREATE TABLE wallet_accounts (
    account TEXT PRIMARY KEY,
    balance BIGINT NOT NULL
);

CREATE TABLE wallet_txns (
    idem_key TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    ts       BIGINT NOT NULL,
    result   TEXT NOT NULL
);

CREATE TABLE wallet_postings (
    idem_key TEXT NOT NULL,
    account  TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    ts       BIGINT NOT NULL,
    PRIMARY KEY (idem_key, account)
);
CREATE INDEX wallet_postings_account ON wallet_postings (account, ts, idem_key);
