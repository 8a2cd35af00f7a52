-- Parley schema v31.
-- The admin audit log: one row per operator action through the admin API
-- or the parley CLI, so that who did what to whom, and when, can be read
-- back (GET /_parley/admin/v1/audit). id rises with time; pages go by id.
CREATE TABLE admin_audit (
    id     BIGINT PRIMARY KEY,
    ts     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX admin_audit_target ON admin_audit (target, id);
