// Package edus sends this server's users' presence and device lists to the
// servers that share a room with them, and keeps what other servers send
// of theirs (issue 11): m.presence, m.device_list_update and
// m.signing_key_update.
//
// It owns no wire and no table of rooms: the outbound queue
// (federation/outbound) carries the EDUs, the in-memory routing tables
// (inbox.Notifier) say who shares a room with whom, and federation/inbound
// checks that an inbound EDU's user belongs to its origin before a sink
// here sees it.
//
// Presence goes out best effort, batched per destination, and not through
// rooms above the small tier (rooms.Tiers.Quiet), which carry no presence
// locally either. Device lists go out durably, one m.device_list_update
// per changed device, with a per-user stream ID (schema 039) so that a
// receiver that missed one sees a gap in prev_id and asks again
// (GET /user/devices). Other servers' device lists are cached in memory,
// bounded, for the users who share a room with a local user, so that
// /keys/query for them does not ask their server every time.
package edus
