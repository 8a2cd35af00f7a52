package homeserver

import (
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/ratelimit"
	"github.com/parley-im/parley/rooms"
)

// actionLimits builds the per-action limiters from the configuration: the
// room writer's (messages, joins, invites, room creation), the media
// upload limiter, and the list of all of them for the periodic sweep.
// With rate_limit.enabled false every one is nil (unlimited) and actions
// is an empty, unlimited set.
func actionLimits(rl config.RateLimit) (actions *rooms.ActionLimits, mediaUploads *ratelimit.Limiter, all []*ratelimit.Limiter) {
	exempt := make(map[string]bool, len(rl.Exempt))
	for _, u := range rl.Exempt {
		exempt[u] = true
	}
	actions = &rooms.ActionLimits{Exempt: exempt}
	if !rl.Enabled {
		return actions, nil, nil
	}
	mk := func(b config.Bucket) *ratelimit.Limiter {
		l := ratelimit.New(b.PerSecond, b.Burst)
		all = append(all, l)
		return l
	}
	actions.Message = mk(rl.Message)
	actions.Join = mk(rl.Join)
	actions.CreateRoom = mk(rl.CreateRoom)
	actions.InvitePerRoom = mk(rl.InvitePerRoom)
	actions.InvitePerUser = mk(rl.InvitePerUser)
	return actions, mk(rl.MediaUpload), all
}
