package inbound

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// Fetcher asks another server for events this one lacks. Every call is a
// network round trip; the handler makes them before the pipeline's
// Accept, never inside the writer. ClientFetcher is the production one.
type Fetcher interface {
	// GetMissingEvents is POST /_matrix/federation/v1/get_missing_events:
	// events of roomID between earliest (which the caller holds) and
	// latest, walking back from latest, at most limit of them, none of
	// depth below minDepth (0: no bound).
	GetMissingEvents(ctx context.Context, server, roomID string, earliest, latest []string, limit int, minDepth int64) ([]json.RawMessage, error)
	// EventAuth is GET /_matrix/federation/v1/event_auth: the full auth
	// chain of eventID.
	EventAuth(ctx context.Context, server, roomID, eventID string) ([]json.RawMessage, error)
	// Event is GET /_matrix/federation/v1/event: one event.
	Event(ctx context.Context, server, eventID string) (json.RawMessage, error)
	// StateIDs is GET /_matrix/federation/v1/state_ids: the IDs of the
	// room state before eventID, and of its auth chain.
	StateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error)
	// State is GET /_matrix/federation/v1/state: the events of the room
	// state before eventID, and of its auth chain.
	State(ctx context.Context, server, roomID, eventID string) (state, authChain []json.RawMessage, err error)
}

// ClientFetcher is a Fetcher over mautrix-go's federation client, which
// signs each request with X-Matrix and resolves the server name.
type ClientFetcher struct {
	Client *federation.Client
}

var _ Fetcher = ClientFetcher{}

// GetMissingEvents implements Fetcher.
func (f ClientFetcher) GetMissingEvents(ctx context.Context, server, roomID string, earliest, latest []string, limit int, minDepth int64) ([]json.RawMessage, error) {
	resp, err := f.Client.GetMissingEvents(ctx, &federation.ReqGetMissingEvents{
		ServerName:     server,
		RoomID:         id.RoomID(roomID),
		EarliestEvents: eventIDs(earliest),
		LatestEvents:   eventIDs(latest),
		Limit:          limit,
		MinDepth:       int(minDepth),
	})
	if err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// EventAuth implements Fetcher.
func (f ClientFetcher) EventAuth(ctx context.Context, server, roomID, eventID string) ([]json.RawMessage, error) {
	resp, err := f.Client.GetEventAuthChain(ctx, server, id.RoomID(roomID), id.EventID(eventID))
	if err != nil {
		return nil, err
	}
	return resp.AuthChain, nil
}

// Event implements Fetcher.
func (f ClientFetcher) Event(ctx context.Context, server, eventID string) (json.RawMessage, error) {
	resp, err := f.Client.GetEvent(ctx, server, id.EventID(eventID))
	if err != nil {
		return nil, err
	}
	if len(resp.PDUs) != 1 {
		return nil, errors.New("event: answer does not hold exactly one PDU")
	}
	return resp.PDUs[0], nil
}

// StateIDs implements Fetcher.
func (f ClientFetcher) StateIDs(ctx context.Context, server, roomID, eventID string) ([]string, []string, error) {
	resp, err := f.Client.GetStateIDs(ctx, server, id.RoomID(roomID), id.EventID(eventID))
	if err != nil {
		return nil, nil, err
	}
	state := make([]string, len(resp.PDUs))
	for i, e := range resp.PDUs {
		state[i] = string(e)
	}
	auth := make([]string, len(resp.AuthChain))
	for i, e := range resp.AuthChain {
		auth[i] = string(e)
	}
	return state, auth, nil
}

// State implements Fetcher.
func (f ClientFetcher) State(ctx context.Context, server, roomID, eventID string) ([]json.RawMessage, []json.RawMessage, error) {
	resp, err := f.Client.GetState(ctx, server, id.RoomID(roomID), id.EventID(eventID))
	if err != nil {
		return nil, nil, err
	}
	return resp.PDUs, resp.AuthChain, nil
}

func eventIDs(ids []string) []id.EventID {
	out := make([]id.EventID, len(ids))
	for i, s := range ids {
		out[i] = id.EventID(s)
	}
	return out
}
