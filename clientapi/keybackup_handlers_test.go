package clientapi

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/apierr"
)

// FuzzParseBackupKeys: any body, at any of the three route levels, is
// either parsed into keys that carry the route's IDs or refused with a
// Matrix error; it never panics.
func FuzzParseBackupKeys(f *testing.F) {
	f.Add([]byte(`{"rooms":{"!r:x":{"sessions":{"s":{"first_message_index":1,"forwarded_count":0,"is_verified":true,"session_data":{}}}}}}`), "", "")
	f.Add([]byte(`{"sessions":{"s":{"first_message_index":1,"forwarded_count":0,"is_verified":false,"session_data":{"a":1}}}}`), "!r:x", "")
	f.Add([]byte(`{"first_message_index":1,"forwarded_count":0,"is_verified":false,"session_data":{}}`), "!r:x", "s")
	f.Add([]byte(`{"rooms":{"!r:x":null}}`), "", "")
	f.Add([]byte(`{"sessions":{"s":null}}`), "!r:x", "")
	f.Add([]byte(`null`), "!r:x", "s")
	f.Fuzz(func(t *testing.T, body []byte, roomID, sessionID string) {
		if roomID == "" {
			sessionID = "" // the router has no session without a room
		}
		keys, err := parseBackupKeys(body, roomID, sessionID)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("parseBackupKeys(%q) error = %v, want a 400 Matrix error", body, err)
			}
			return
		}
		for _, k := range keys {
			if roomID != "" && k.RoomID != roomID {
				t.Fatalf("key room = %q, want the route's %q", k.RoomID, roomID)
			}
			if sessionID != "" && k.SessionID != sessionID {
				t.Fatalf("key session = %q, want the route's %q", k.SessionID, sessionID)
			}
			if k.Data.SessionData == nil {
				t.Fatalf("key %s/%s parsed without session_data", k.RoomID, k.SessionID)
			}
		}
	})
}
