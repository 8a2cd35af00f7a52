// Package desks owns customer-service desks: a shop's agents, their skills,
// status and load, the queue of waiting customers, and the routing of each
// consultation to an agent. It is built from rooms (each consultation is a
// room), presence (an offline agent is not available) and sync (everything a
// customer or agent sees arrives as ordinary room events).
//
// It must not speak HTTP (clientapi does) nor write SQL (storage does), and
// it writes room logs only through rooms.Service.
//
// # State and its owner
//
// Each desk is one mutex-guarded model in memory (desk.mu), loaded from the
// store at start. Every decision (route, queue, re-route, close) is taken
// and written to the store under that one lock, and memory changes only
// after the write succeeds, so two agents freeing slots at once cannot take
// the same customer and no agent exceeds capacity. The room side of a
// decision (joins, leaves, notices, the state event) is applied after the
// lock is released, by reconcile, which brings one consultation's room in
// line with the model under that consultation's own mutex (consultation.fx).
// A room write that fails leaves the consultation dirty; the sweep retries it.
//
// Lock order: Service.adminMu, consultation.fx, desk.mu, Service.mu.
// Presence's own lock is taken under desk.mu (inbox never calls back into
// desks). Room writes are never made with desk.mu held: the lock covers a
// decision and its one store write, not the room writer's queue.
//
// # The room state event
//
// Every consultation room carries one state event of type
// io.parley.desk.consultation with state_key "", sent by the desk's service
// user and replaced on every change, so clients can render the desk's view:
//
//	{"desk_id": "shop", "desk_name": "Acme", "consultation_id": "…",
//	 "customer": "@c:example.org", "category": "presale",
//	 "state": "queued" | "assigned" | "closed",
//	 "agent": "@a:example.org" | null, "queue_position": 3, "rating": 5}
//
// queue_position is the customer's place among queued consultations of the
// same category (1 = next), 0 when not queued; rating appears once given.
// Notices (m.notice from the service user) carry "io.parley.desk.notice":
// {"kind": "assigned" | "queued" | "transferred" | "rerouted" | "closed",
// "consultation_id", "agent", "queue_position"}.
//
// Schema log (newest last):
//
//	2026-11-26  io.parley.desk.consultation and io.parley.desk.notice, first version.
package desks
