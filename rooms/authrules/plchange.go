package authrules

import (
	"sort"

	"github.com/tidwall/gjson"
)

// checkPowerLevels is rule 9: the new content must be well-formed (9.1 to
// 9.3), and against the previous power levels the sender may not touch a
// level above their own, raise anything above their own, or change another
// user whose level is at or above their own.
func (s *state) checkPowerLevels(senderLevel int64) error {
	if _, err := ParsePowerLevels(s.ev.Content); err != nil {
		return err
	}
	// Rule 10.4 of version 12: creators have no level to list.
	listed := entries(gjson.GetBytes(s.ev.Content, "users"))
	for _, c := range s.pl.Creators {
		if _, ok := listed[c]; ok {
			return deny("%s is a room creator, whose power cannot be listed in m.room.power_levels", c)
		}
	}
	if s.plEvent == nil {
		return nil // 9.4: the room's first power levels
	}
	oldRoot, newRoot := gjson.ParseBytes(s.plEvent.Content), gjson.ParseBytes(s.ev.Content)
	for _, key := range topLevelKeys {
		if err := checkChange(key, oldRoot.Get(key), newRoot.Get(key), senderLevel); err != nil {
			return err
		}
	}
	for _, name := range [...]string{"events", "notifications"} {
		oldMap, newMap := entries(oldRoot.Get(name)), entries(newRoot.Get(name))
		for _, k := range unionKeys(oldMap, newMap) {
			if err := checkChange(name+"["+k+"]", oldMap[k], newMap[k], senderLevel); err != nil {
				return err
			}
		}
	}
	oldUsers, newUsers := entries(oldRoot.Get("users")), entries(newRoot.Get("users"))
	for _, user := range unionKeys(oldUsers, newUsers) {
		o, oOK := level(oldUsers[user])
		n, nOK := level(newUsers[user])
		if oOK == nOK && o == n {
			continue
		}
		if user != s.ev.Sender && oOK && o >= senderLevel {
			return deny("cannot change the power level of %s, whose level %d is not below the sender's %d", user, o, senderLevel)
		}
		if nOK && n > senderLevel {
			return deny("cannot give %s power level %d, above the sender's %d", user, n, senderLevel)
		}
	}
	return nil
}

// checkChange is rules 9.5 to 9.7 for one level: if it was added, changed
// or removed, neither its old nor its new value may exceed the sender's.
// A value that does not parse counts as absent.
func checkChange(what string, oldV, newV gjson.Result, senderLevel int64) error {
	o, oOK := level(oldV)
	n, nOK := level(newV)
	if oOK == nOK && o == n {
		return nil
	}
	if oOK && o > senderLevel {
		return deny("cannot change %s from %d, above the sender's power level %d", what, o, senderLevel)
	}
	if nOK && n > senderLevel {
		return deny("cannot set %s to %d, above the sender's power level %d", what, n, senderLevel)
	}
	return nil
}

// entries indexes an object's members by key. Keys are event types and
// user IDs, which contain dots and other gjson path characters, so they are
// never used as paths.
func entries(obj gjson.Result) map[string]gjson.Result {
	out := map[string]gjson.Result{}
	obj.ForEach(func(k, v gjson.Result) bool {
		if obj.IsObject() {
			out[k.String()] = v
		}
		return true
	})
	return out
}

// unionKeys lists the keys of two objects, sorted, so refusals are
// reported deterministically.
func unionKeys(a, b map[string]gjson.Result) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, dup := a[k]; !dup {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
