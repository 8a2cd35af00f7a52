-- Parley schema v14.
-- A consultation being opened (package desks). Opening takes several room
-- writes (create the room, join the customer, post their question) before
-- the consultation is routed and recorded in desk_consultations. The open
-- is written here first, with the room ID chosen in advance, the question
-- and the customer's device, so a crash at any step leaves a row that the
-- next start (or the customer's retry) finishes instead of an orphan room.
-- The row goes once the consultation is in desk_consultations. At most one
-- open is pending per customer and category.
CREATE TABLE desk_pending_consultations (
    consultation_id TEXT PRIMARY KEY,
    desk_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    customer        TEXT NOT NULL,
    category        TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    body            TEXT NOT NULL,
    opened_ts       BIGINT NOT NULL
);
CREATE UNIQUE INDEX desk_pending_consultations_customer ON desk_pending_consultations (desk_id, customer, category);
