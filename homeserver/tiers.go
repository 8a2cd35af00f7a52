package homeserver

import (
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/rooms"
)

// roomTiers carries the configured group size tiers to the room writer and
// the inbox.
func roomTiers(c config.RoomTiers) rooms.Tiers {
	return rooms.Tiers{LargeAbove: c.LargeAbove, HugeAbove: c.HugeAbove, MaxMembers: c.MaxMembers,
		HugeModeratorsOnly: c.HugeModeratorsOnly}.WithDefaults()
}
