-- The store's epoch: a random ID written when the store is first opened and
-- renewed when a backup is restored into it. Sync tokens carry it, so that a
-- token from before a restore gets a fresh initial sync instead of silently
-- moving its holder backwards.
CREATE TABLE store_epoch (
    id INTEGER PRIMARY KEY,
    epoch TEXT NOT NULL
);
