package authrules

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// maxSafeInt is 2^53-1, the canonical JSON integer limit power levels share.
const maxSafeInt = 1<<53 - 1

// PowerLevels is m.room.power_levels content with the spec's defaults
// applied.
type PowerLevels struct {
	// Creators are the room's creators when the room version gives them
	// unlimited power (version 12, MSC4289): UserLevel answers CreatorLevel
	// for them, whatever Users says. Nil before version 12.
	Creators      []string
	Users         map[string]int64
	UsersDefault  int64
	Events        map[string]int64
	EventsDefault int64
	StateDefault  int64
	Ban           int64
	Kick          int64
	Invite        int64
	Redact        int64
	Notifications struct{ Room int64 }
}

// topLevelKeys are the integer properties auth rule 9.1 validates and rule
// 9.5 compares.
var topLevelKeys = [...]string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

// specDefaults are the levels the spec assumes for absent properties, both
// with and without a power levels event (current spec text: state_default
// is 50 in both cases, matching Synapse and mautrix).
func specDefaults() PowerLevels {
	p := PowerLevels{
		Users: map[string]int64{}, Events: map[string]int64{},
		StateDefault: 50, Ban: 50, Kick: 50, Redact: 50,
	}
	p.Notifications.Room = 50
	return p
}

// DefaultPowerLevels is what applies while a room has no power levels
// event: the creator has 100, everyone else 0.
func DefaultPowerLevels(creator string) PowerLevels {
	p := specDefaults()
	p.Users[creator] = 100
	return p
}

// ParsePowerLevels validates content as room versions 10+ require (auth
// rules 9.1 to 9.3: every level an integer, events and notifications
// objects of integers, users an object of user IDs to integers) and returns
// it with defaults applied. The error says what is wrong in plain English.
func ParsePowerLevels(content json.RawMessage) (PowerLevels, error) {
	p := specDefaults()
	root := gjson.ParseBytes(content)
	if !root.IsObject() {
		return p, deny("power levels content must be a JSON object")
	}
	fields := map[string]*int64{
		"users_default": &p.UsersDefault, "events_default": &p.EventsDefault, "state_default": &p.StateDefault,
		"ban": &p.Ban, "redact": &p.Redact, "kick": &p.Kick, "invite": &p.Invite,
	}
	for _, key := range topLevelKeys {
		if v := root.Get(key); v.Exists() {
			n, ok := level(v)
			if !ok {
				return p, deny("power level %s must be an integer, got %s", key, v.Raw)
			}
			*fields[key] = n
		}
	}
	for _, name := range [...]string{"events", "notifications"} {
		obj := root.Get(name)
		if !obj.Exists() {
			continue
		}
		if !obj.IsObject() {
			return p, deny("power levels %s must be an object, got %s", name, obj.Raw)
		}
		var err error
		obj.ForEach(func(k, v gjson.Result) bool {
			n, ok := level(v)
			if !ok {
				err = deny("power level %s[%q] must be an integer, got %s", name, k.String(), v.Raw)
				return false
			}
			if name == "events" {
				p.Events[k.String()] = n
			} else if k.String() == "room" {
				p.Notifications.Room = n
			}
			return true
		})
		if err != nil {
			return p, err
		}
	}
	if users := root.Get("users"); users.Exists() {
		if !users.IsObject() {
			return p, deny("power levels users must be an object, got %s", users.Raw)
		}
		var err error
		users.ForEach(func(k, v gjson.Result) bool {
			user := k.String()
			if !plausibleUserID(user) {
				err = deny("power levels users key %q is not a user ID", user)
				return false
			}
			n, ok := level(v)
			if !ok {
				err = deny("power level of %s must be an integer, got %s", user, v.Raw)
				return false
			}
			p.Users[user] = n
			return true
		})
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// plausibleUserID is the user ID check auth rule 9.3 applies: "@", a colon,
// a non-empty server part. It is deliberately the loose check Synapse and
// mautrix apply, because auth rules must agree across servers even on
// historical IDs that pdu.ValidUserID's server-name grammar would refuse.
func plausibleUserID(s string) bool {
	return len(s) > 1 && s[0] == '@' && pdu.Domain(s) != ""
}

// level decodes an integer power level; strings, floats and anything
// beyond the canonical JSON range are refused from room version 10 on.
func level(v gjson.Result) (int64, bool) {
	if v.Type != gjson.Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if err != nil || n > maxSafeInt || n < -maxSafeInt {
		return 0, false
	}
	return n, true
}

// CreatorLevel is the power level UserLevel reports for a version 12 room
// creator: above any level an event can set (those stop at 2^53-1), so a
// creator passes every "at least" check and no one outranks them.
const CreatorLevel int64 = math.MaxInt64

// IsCreator reports whether userID is one of p.Creators.
func (p PowerLevels) IsCreator(userID string) bool {
	return len(p.Creators) > 0 && slices.Contains(p.Creators, userID)
}

// UserLevel returns userID's power level.
func (p PowerLevels) UserLevel(userID string) int64 {
	if p.IsCreator(userID) {
		return CreatorLevel
	}
	if n, ok := p.Users[userID]; ok {
		return n
	}
	return p.UsersDefault
}

// EventLevel returns the level needed to send an event of eventType.
func (p PowerLevels) EventLevel(eventType string, isState bool) int64 {
	if n, ok := p.Events[eventType]; ok {
		return n
	}
	if isState {
		return p.StateDefault
	}
	return p.EventsDefault
}
