-- Parley schema v39.
-- What this server last told other servers about each local user's device
-- list (federation/edus, issue 11): the user's device-list stream ID, the
-- stream_id / prev_id of m.device_list_update, and a digest per device and
-- per cross-signing key announced. A change is announced by comparing the
-- user's devices and keys now with these rows, so a change that was not
-- announced before a crash is caught by the next one.
CREATE TABLE device_list_streams (
    user_id   TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL
);
CREATE TABLE device_list_announced (
    user_id TEXT NOT NULL,
    item    TEXT NOT NULL, -- "d:" + device ID, "master" or "self_signing"
    digest  TEXT NOT NULL,
    PRIMARY KEY (user_id, item)
);
