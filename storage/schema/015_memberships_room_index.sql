-- Parley schema v15.
-- Room summaries count a room's joined and invited members from this index
-- alone, and take the first members by position (the heroes) as a short
-- range of it: a sync in a 10,000-member room no longer sorts the member
-- list (storage.RoomSummaries).
CREATE INDEX memberships_room ON memberships (room_id, membership, pos);
