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
		`{"pos":"abc_1","timeout":30000}`,
		`{"lists":{"a":{"filters":{"is_encrypted":true,"spaces":["!s:x"],"room_types":[null,"m.space"],"not_room_types":[],"room_name_like":"Fo","tags":["m.favourite"],"not_tags":["m.lowpriority"],"unknown":{"x":1}}}}}`,
		`{"lists":{"a":{"filters":{"room_types":[1]}}}}`, `{"lists":{"a":{"filters":{"is_dm":"yes"}}}}`,
		`{"extensions":{"account_data":{"enabled":true,"lists":["a"],"rooms":null},"receipts":{"enabled":true,"lists":[]},"typing":{"enabled":true,"rooms":[5]},"io.element.msc4308.thread_subscriptions":7}}`, `{"lists":{"a":{"ranges":[[0,99999999999]]}}}`, `{"lists":{"a":{"ranges":[[9999999999,99999999999]]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseSlidingBody(body)
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
			for _, n := range []int{len(l.Spaces), len(l.RoomTypes), len(l.NotRoomTypes), len(l.Tags), len(l.NotTags)} {
				if n > maxSlidingFilterLen {
					t.Fatalf("list %q: a filter of %d entries", name, n)
				}
			}
			if len(name) > maxSlidingListName {
				t.Fatalf("list name of %d bytes", len(name))
			}
			for _, rg := range l.Ranges {
				if rg[0] < 0 || rg[1] < rg[0] || rg[1] > maxSlidingRangeEnd {
					t.Fatalf("list %q: range %v", name, rg)
				}
			}
		}
		for _, sc := range []SlidingScope{req.Extensions.AccountDataScope, req.Extensions.ReceiptsScope, req.Extensions.TypingScope} {
			if len(sc.Lists) > maxSlidingScopeLen || len(sc.Rooms) > maxSlidingScopeLen {
				t.Fatalf("extension scope of %d lists, %d rooms", len(sc.Lists), len(sc.Rooms))
			}
		}
		if e := req.Extensions; e.ToDevice && (e.ToDeviceLimit <= 0 || e.ToDeviceLimit > toDeviceBatch) {
			t.Fatalf("to_device limit %d", e.ToDeviceLimit)
		}
	})
}
