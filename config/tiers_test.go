package config

import (
	"strings"
	"testing"
)

func TestRoomTiersValidate(t *testing.T) {
	for _, c := range []struct {
		tiers RoomTiers
		want  string // "" = valid
	}{
		{RoomTiers{}, ""},
		{RoomTiers{LargeAbove: 500, HugeAbove: 5000, MaxMembers: 10000, HugeModeratorsOnly: true}, ""},
		{RoomTiers{LargeAbove: 500, HugeAbove: 500}, "huge_above (500) must be above large_above (500)"},
		{RoomTiers{MaxMembers: -1}, "large_above, huge_above and max_members must not be negative"},
	} {
		cfg := Default()
		cfg.RoomTiers = c.tiers
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: Validate = %v, want nil", c.tiers, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), "room_tiers: "+c.want)):
			t.Errorf("%+v: Validate = %v, want an error with %q", c.tiers, err, c.want)
		}
	}
}
