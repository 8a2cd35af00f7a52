// Package desks owns customer-service desks: a shop's agents, their skills,
// status and load, the queue of waiting customers, and the routing of each
// consultation to an agent. It is built from rooms (each consultation is a
// room), presence (an offline agent is not available) and sync.
package desks

// Service runs the desks. (Skeleton: filled in by the desks work.)
type Service struct{}
