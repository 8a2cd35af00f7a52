package homeserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/push"
	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/storage"
)

// startPush starts push delivery on the store, fed by the room writer's
// commit notice (the caller registers it); rules is the push-rule service
// the client API edits, so muting a room takes effect at once.
func startPush(ctx context.Context, cfg config.Push, store *storage.Store, rules *pushrules.Service, log *slog.Logger) (*push.Service, error) {
	return push.New(ctx, push.Config{Store: store, Rules: rules, Logger: log, AllowIPs: cfg.AllowPrefixes(),
		MaxQueue: cfg.MaxQueue, MinBackoff: time.Duration(cfg.MinBackoffMs) * time.Millisecond,
		MaxBackoff: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Timeout: time.Duration(cfg.TimeoutMs) * time.Millisecond,
		MaxPushersPerUser: cfg.MaxPushersPerUser})
}
