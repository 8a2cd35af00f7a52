package config

import (
	"fmt"
	"math"
)

// FederationInbound bounds what other servers may push to this one through
// PUT /_matrix/federation/v1/send (package federation/inbound; each field
// is the Limits field of the same name).
type FederationInbound struct {
	// MaxBodyBytes bounds one transaction's body; a larger one gets 413
	// M_TOO_LARGE. Zero value means 8388608 (8 MiB): 50 PDUs of the
	// spec's 64 KiB each, plus EDUs.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// OriginPerSecond is how many transactions one origin server may start
	// a second, with OriginBurst in hand; more get 429 M_LIMIT_EXCEEDED.
	// Zero value means 50 (a sender sends one at a time, so this only
	// stops a runaway peer); a negative value turns the limit off.
	OriginPerSecond float64 `yaml:"origin_per_second"`
	// OriginBurst: zero value means 100.
	OriginBurst int `yaml:"origin_burst"`
	// MaxRooms bounds the rooms whose events are processed at once,
	// server-wide; a room waits for a slot. Zero value means 8.
	MaxRooms int `yaml:"max_rooms"`
	// MissingEventsLimit is the limit asked of get_missing_events when a
	// PDU's prev events are missing, 10 to 20. Zero value means 20, what
	// Synapse sends.
	MissingEventsLimit int `yaml:"missing_events_limit"`
	// MaxFetchedEvents is how many events lacking from the state at a
	// missing prev event are fetched one by one; when more are lacking,
	// the whole state comes in one /state request. Zero value means 10:
	// ten round trips cost about what one /state of a big room does.
	MaxFetchedEvents int `yaml:"max_fetched_events"`
	// TxnLogHours is how long the answer to a transaction is kept in the
	// store, so that a retry (after a restart too) gets it again instead
	// of a second delivery of its EDUs. Zero value means 24.
	TxnLogHours int `yaml:"txn_log_hours"`
}

func (f *FederationInbound) fillDefaults() {
	setDefault(&f.MaxBodyBytes, 8<<20)
	setDefault(&f.OriginPerSecond, 50)
	setDefault(&f.OriginBurst, 100)
	setDefault(&f.MaxRooms, 8)
	setDefault(&f.MissingEventsLimit, 20)
	setDefault(&f.MaxFetchedEvents, 10)
	setDefault(&f.TxnLogHours, 24)
}

// validate reports the first invalid setting.
func (f FederationInbound) validate() error {
	switch {
	case f.MaxBodyBytes < 0, f.OriginBurst < 0, f.MaxRooms < 0, f.MaxFetchedEvents < 0, f.TxnLogHours < 0:
		return fmt.Errorf("max_body_bytes, origin_burst, max_rooms, max_fetched_events and txn_log_hours must not be negative")
	case math.IsNaN(f.OriginPerSecond) || math.IsInf(f.OriginPerSecond, 0):
		return fmt.Errorf("origin_per_second %v is not a number of transactions a second", f.OriginPerSecond)
	case f.MissingEventsLimit != 0 && (f.MissingEventsLimit < 10 || f.MissingEventsLimit > 20):
		return fmt.Errorf("missing_events_limit %d is outside 10 to 20", f.MissingEventsLimit)
	}
	return nil
}
