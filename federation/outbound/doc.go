// Package outbound sends this server's room events (PDUs) and EDUs to other
// homeservers: one durable queue per destination, kept in the store, so
// nothing acknowledged to a local client is lost to a restart or an outage.
//
// It owns the queue's rules: which servers get which PDU, transactions of
// at most 50 PDUs and 100 EDUs, one transaction in flight per destination,
// PDUs in position order, retries with exponential backoff and jitter, and
// a transaction ID that stays the same across retries and restarts.
//
// It does not speak HTTP or sign requests: a Transport (defined here, built
// elsewhere on the X-Matrix client) carries each transaction. It never
// blocks the room writer: the writer's commit notice only records a
// position and wakes the scanner.
//
// The room logs (the events table) are the queue. Per destination the store
// keeps a cursor (the last position acknowledged), and per room the spans of
// positions each remote server was in it (fed_room_servers). A destination
// catches up by reading its rooms' events after its cursor, 50 at a time,
// so a destination down for a day costs rows on disk it would cost anyway,
// not memory. See docs/federation.md, "Outbound queue".
package outbound
