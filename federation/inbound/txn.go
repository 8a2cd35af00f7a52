package inbound

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/parley-im/parley/apierr"
)

// Transaction is a parsed /send body. PDUs stay raw: each is parsed and
// checked alone, so that one bad PDU fails only itself.
type Transaction struct {
	// Origin and OriginServerTS are what the body says. The handler trusts
	// only the authenticated origin (the X-Matrix header's), as Synapse
	// does; these are kept for logs.
	Origin         string
	OriginServerTS int64
	PDUs           []json.RawMessage
	EDUs           []EDU
}

// EDU is one ephemeral data unit.
type EDU struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// ParseTransaction parses a /send body. It refuses, as a *apierr.Error,
// a body that is not a JSON object (400 M_NOT_JSON), whose fields have the
// wrong type (400 M_BAD_JSON), or with more than maxPDUs PDUs or maxEDUs
// EDUs (400 M_BAD_JSON; Synapse answers these with 400 and an empty body).
// It never looks inside a PDU; an EDU that is not an object with a string
// edu_type is skipped, as an unknown EDU is. It never panics.
func ParseTransaction(body []byte, maxPDUs, maxEDUs int) (*Transaction, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return nil, apierr.NotJSON("Transaction body is not a JSON object")
	}
	var raw struct {
		Origin         json.RawMessage   `json:"origin"`
		OriginServerTS json.RawMessage   `json:"origin_server_ts"`
		PDUs           []json.RawMessage `json:"pdus"`
		EDUs           []json.RawMessage `json:"edus"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, apierr.BadJSON(fmt.Sprintf("Transaction body: pdus and edus must be lists: %v", err))
	}
	if len(raw.PDUs) > maxPDUs || len(raw.EDUs) > maxEDUs {
		return nil, apierr.BadJSON(fmt.Sprintf("Transaction holds %d PDUs and %d EDUs; at most %d and %d are allowed", len(raw.PDUs), len(raw.EDUs), maxPDUs, maxEDUs))
	}
	t := &Transaction{PDUs: raw.PDUs}
	_ = json.Unmarshal(raw.Origin, &t.Origin)
	_ = json.Unmarshal(raw.OriginServerTS, &t.OriginServerTS)
	t.EDUs = make([]EDU, 0, len(raw.EDUs))
	for _, e := range raw.EDUs {
		var edu EDU
		if json.Unmarshal(e, &edu) != nil || edu.Type == "" {
			continue
		}
		t.EDUs = append(t.EDUs, edu)
	}
	return t, nil
}
