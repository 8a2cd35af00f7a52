// Package federation will own the server-server API: the signing-key
// endpoints, request signing (X-Matrix), inbound transactions and outbound
// queues. Parley is single-node today: rooms/pdu already builds and signs
// federation-format events with the server's key, so the room logs need no
// migration when federation arrives.
package federation
