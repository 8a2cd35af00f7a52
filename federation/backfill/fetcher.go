package backfill

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/federation/inbound"
)

// ClientFetcher is a Fetcher over mautrix-go's federation client, which
// signs each request with X-Matrix and resolves the server name. The
// fetches other than /backfill are federation/inbound's.
type ClientFetcher struct {
	inbound.ClientFetcher
}

var _ Fetcher = ClientFetcher{}

// NewClientFetcher returns a ClientFetcher over the signed client.
func NewClientFetcher(c *federation.Client) ClientFetcher {
	return ClientFetcher{inbound.ClientFetcher{Client: c}}
}

// Backfill implements Fetcher.
func (f ClientFetcher) Backfill(ctx context.Context, server, roomID string, from []string, limit int) ([]json.RawMessage, error) {
	v := make([]id.EventID, len(from))
	for i, s := range from {
		v[i] = id.EventID(s)
	}
	resp, err := f.Client.Backfill(ctx, &federation.ReqBackfill{ServerName: server, RoomID: id.RoomID(roomID), Limit: limit, BackfillFrom: v})
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(resp.PDUs))
	for i, p := range resp.PDUs {
		out[i] = json.RawMessage(p)
	}
	return out, nil
}
