// Package inbound owns what other servers push to this one: the
// federation /send endpoint (PUT /_matrix/federation/v1/send/{txnId}). It
// parses a transaction within limits, answers a retried transaction ID
// with the first answer, runs each PDU through the room-DAG pipeline
// (package rooms/inbound, which holds the checks), fetches what a PDU
// lacks from the sending server, enforces m.room.server_acl, validates
// EDUs and hands them to small sinks.
//
// # Order and concurrency
//
// A transaction's PDUs are grouped by room. Each room's PDUs are handled
// one at a time, in the order they came, under a per-room lock that also
// orders transactions from different origins touching the same room.
// Rooms run in parallel, at most Limits.MaxRooms at once server-wide.
// Every network fetch (get_missing_events, event_auth, event, state_ids)
// happens before the pipeline's Accept, never inside the writer: the
// writer (the Persister behind the pipeline) only stores.
//
// # What it must not do
//
// It does not decide whether an event is allowed (rooms/inbound and
// rooms/authrules do), does not check request signatures (the X-Matrix
// middleware in front of it does, and hands it the origin through
// Config.Origin) and does not touch storage other than through the
// pipeline and the interfaces in Config.
package inbound
