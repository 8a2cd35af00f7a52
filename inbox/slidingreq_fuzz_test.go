package inbox

import (
	"errors"
	"testing"
)

// FuzzParseSlidingBody: any body parses or is refused with
// ErrSlidingRequest, never panics, and what parses keeps the bounds.
func FuzzParseSlidingBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`,
		`{"conn_id":"main","lists":{"all":{"ranges":[[0,19]],"timeline_limit":1,"required_state":[["m.room.create",""],["m.room.member","$LAZY"]],"filters":{"is_dm":true,"is_invite":false}}}}`,
		`{"room_subscriptions":{"!a:b":{"timeline_limit":50,"required_state":[["*","*"]]}}}`,
		`{"extensions":{"to_device":{"enabled":true,"since":"12","limit":5},"e2ee":{"enabled":true},"typing":{"enabled":false}}}`,
		`{"lists":{"a":{"ranges":[[5,1]]}}}`, `{"lists":{"a":{"ranges":[[0]]}}}`, `{"lists":{"a":{"timeline_limit":-1}}}`,
		`{"lists":{"a":{"required_state":[["a","b","c"]]}}}`, `{"extensions":{"to_device":{"enabled":true,"since":"x"}}}`,
		`{"pos":"abc_1","timeout":30000}`, `{"lists":{"a":{"ranges":[[0,99999999999]]}}}`, `{"lists":{"a":{"ranges":[[9999999999,99999999999]]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _, err := ParseSlidingBody(body)
		if err != nil {
			if !errors.Is(err, ErrSlidingRequest) {
				t.Fatalf("error %v does not wrap ErrSlidingRequest", err)
			}
			return
		}
		if len(req.Lists) > maxSlidingLists || len(req.RoomSubscriptions) > maxSlidingSubs {
			t.Fatalf("%d lists, %d subscriptions: over the bounds", len(req.Lists), len(req.RoomSubscriptions))
		}
		for name, l := range req.Lists {
			if l.TimelineLimit < 0 || l.TimelineLimit > MaxTimelineLimit || len(l.RequiredState) > maxSlidingStatePair {
				t.Fatalf("list %q: limit %d, %d state pairs", name, l.TimelineLimit, len(l.RequiredState))
			}
			for _, rg := range l.Ranges {
				if rg[0] < 0 || rg[1] < rg[0] || rg[1] > maxSlidingRangeEnd {
					t.Fatalf("list %q: range %v", name, rg)
				}
			}
		}
		if e := req.Extensions; e.ToDevice && (e.ToDeviceLimit <= 0 || e.ToDeviceLimit > toDeviceBatch) {
			t.Fatalf("to_device limit %d", e.ToDeviceLimit)
		}
	})
}
