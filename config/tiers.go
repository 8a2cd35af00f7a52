package config

import "fmt"

// RoomTiers sets the group size tiers (rooms/tiers.go). Above large_above
// joined members a room stops fanning out typing and receipts to every
// member (each reaches only its sender's own devices), stops sending
// members' presence to the room, and is synced with lazy-loaded members.
type RoomTiers struct {
	// LargeAbove is the joined count above which a room is "large". Zero
	// value means 500, WeChat's group cap: below it every member sees every
	// typing notification and receipt.
	LargeAbove int `yaml:"large_above"`
	// HugeAbove is the joined count above which a room is "huge". Zero value
	// means 5000, above DingTalk's large groups of 3,000.
	HugeAbove int `yaml:"huge_above"`
	// MaxMembers caps the joined members of any room; a join beyond it gets
	// 403 M_FORBIDDEN. Zero value means no cap.
	MaxMembers int `yaml:"max_members"`
	// HugeModeratorsOnly lets only moderators (power level 50 or more) send
	// messages in a huge room, as a broadcast channel. Zero value (false)
	// means every member may post.
	HugeModeratorsOnly bool `yaml:"huge_moderators_only"`
}

// validate reports the first invalid tier setting.
func (t RoomTiers) validate() error {
	switch {
	case t.LargeAbove < 0, t.HugeAbove < 0, t.MaxMembers < 0:
		return fmt.Errorf("large_above, huge_above and max_members must not be negative")
	case t.LargeAbove > 0 && t.HugeAbove > 0 && t.HugeAbove <= t.LargeAbove:
		return fmt.Errorf("huge_above (%d) must be above large_above (%d)", t.HugeAbove, t.LargeAbove)
	}
	return nil
}
