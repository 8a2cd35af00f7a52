package homeserver

import (
	"context"
	"errors"

	"github.com/parley-im/parley/federation/outbound"
)

// StartOutbound starts the outbound federation queue on this server's
// store, fed by the room writer's commit notice. cfg.Transport is
// required (the signed federation client); ServerName, Store and Logger
// are filled in when empty. Shutdown stops the queue before the store
// closes. Call it once, after New.
func (s *Server) StartOutbound(ctx context.Context, cfg outbound.Config) (*outbound.Queue, error) {
	if cfg.ServerName == "" {
		cfg.ServerName = s.cfg.ServerName
	}
	if cfg.Store == nil {
		cfg.Store = s.Store
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outbound != nil {
		return nil, errors.New("outbound federation queue already started")
	}
	q, err := outbound.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.AddCommitListener(q)
	s.outbound = q
	return q, nil
}

// Outbound is the outbound federation queue, nil until StartOutbound.
func (s *Server) Outbound() *outbound.Queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outbound
}
