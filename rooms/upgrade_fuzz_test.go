package rooms

import (
	"encoding/json"
	"testing"
)

// FuzzUpgradePowerLevels: whatever power levels content an old room holds,
// fitting it for the new room and restricting the old one never panic and
// give a JSON object or nothing; a version 12 result never lists the
// upgrader.
func FuzzUpgradePowerLevels(f *testing.F) {
	f.Add(`{"users":{"@a:x":100,"@b:x":50},"events_default":0,"invite":0}`, "12")
	f.Add(`{"users":{"@a:x":"100"},"users_default":"x"}`, "11")
	f.Add(`{"users":[1,2]}`, "10")
	f.Add(`null`, "11")
	f.Add(`[]`, "12")
	f.Add(`{"users_default":1e300,"events_default":-1e300}`, "11")
	f.Fuzz(func(t *testing.T, content, version string) {
		out, err := upgradePowerLevels(content, "@a:x", version)
		if err != nil {
			t.Fatalf("upgradePowerLevels(%q) error %v", content, err)
		}
		if out != nil {
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("upgradePowerLevels(%q) = %s, not an object: %v", content, out, err)
			}
			if version == "12" {
				if users, _ := m["users"].(map[string]any); users != nil {
					if _, listed := users["@a:x"]; listed {
						t.Fatalf("version 12 power levels list the upgrader: %s", out)
					}
				}
			}
		}
		if r, ok := restrictOldRoom(content); ok && !json.Valid(r) {
			t.Fatalf("restrictOldRoom(%q) = %s, not JSON", content, r)
		}
	})
}
