package homeserver

import (
	"context"

	"github.com/parley-im/parley/clientapi"
	"github.com/parley-im/parley/federation/backfill"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/storage"
)

// History from before this server joined a room (issue 11): /messages
// asks federation/backfill to fill a gap from the room's other servers.

// fedBackfill is the client API's Backfiller. b is set by wireBackfill, in
// New, before any request can arrive; static after.
type fedBackfill struct{ b *backfill.Backfiller }

var _ clientapi.Backfiller = (*fedBackfill)(nil)

// Fill implements clientapi.Backfiller.
func (f *fedBackfill) Fill(ctx context.Context, roomID string, page []storage.Event) bool {
	if f == nil || f.b == nil {
		return false
	}
	return f.b.Fill(ctx, roomID, page)
}

// wireBackfill builds the backfiller over the signed client and the room
// service's inbound adapter.
func (s *Server) wireBackfill(f *fedBackfill) {
	if f == nil {
		return
	}
	fed := s.Fed
	src := s.Rooms.InboundStore()
	f.b = backfill.New(backfill.Config{ServerName: s.cfg.ServerName, Fetcher: backfill.NewClientFetcher(fed.Client.Client),
		Source: src, Keys: fed.Keys, Outliers: checks.New(src, fed.Keys, src), Rooms: s.Rooms, Store: s.Store, Log: s.log})
}
