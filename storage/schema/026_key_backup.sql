-- Parley schema v26: server-side key backup (package keybackup).
-- A user's backup versions are numbered from 1 and never reused: a deleted
-- version keeps its row, marked deleted, so a client holding an old version
-- number can never write into a newer backup by mistake. The current
-- version is the highest one not deleted. etag counts changes to the keys
-- of a version; clients compare it to learn whether to re-download.
-- session_count is kept with every change, so neither the version info nor
-- an upload's answer counts a large backup's rows.
CREATE TABLE key_backup_versions (
    user_id   TEXT NOT NULL,
    version   BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag      BIGINT NOT NULL DEFAULT 0,
    session_count BIGINT NOT NULL DEFAULT 0,
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

-- One row per backed-up megolm session. session_data is the client's
-- encrypted blob, stored as JSON text and never read by the server.
CREATE TABLE key_backup_sessions (
    user_id             TEXT NOT NULL,
    version             BIGINT NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count     BIGINT NOT NULL,
    is_verified         INTEGER NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
