package outbound

import (
	"context"
	"encoding/json"
)

// Transport carries one transaction to a destination: PUT
// /_matrix/federation/v1/send/{txn.ID}, signed. Any error, including a
// non-200 answer, makes the queue retry the same transaction later, so the
// receiver must de-duplicate by transaction ID, as the spec says it does.
type Transport interface {
	SendTransaction(ctx context.Context, destination string, txn *Transaction) (Result, error)
}

// Transaction is the body of a federation /send request, plus its ID.
type Transaction struct {
	ID             string            `json:"-"`
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []EDU             `json:"edus,omitempty"`
}

// EDU is an ephemeral data unit as the wire carries it.
type EDU struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// Result is the receiver's answer to a transaction it accepted: per PDU
// (by event ID), the error it found, if any. A refused PDU is not retried:
// the spec makes each PDU's fate the receiver's, and resending cannot
// change it.
type Result struct {
	PDUErrors map[string]string
}

// EDU types the queue keeps in the store until the destination has them.
// Losing one would lose data the user cannot get back (an encrypted
// to-device message, a device-list change that keeps E2EE working).
// Typing, receipts and presence are kept in memory only: they are
// superseded by the next one, and best effort is what other servers do.
var durableEDUTypes = map[string]bool{
	"m.direct_to_device":   true,
	"m.device_list_update": true,
	"m.signing_key_update": true,
}

// IsDurableEDU reports whether edus of this type are kept in the store
// until acknowledged.
func IsDurableEDU(eduType string) bool { return durableEDUTypes[eduType] }
