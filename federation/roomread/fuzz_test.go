package roomread

import (
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// FuzzParseMissingEvents: any body either parses to a request whose event
// IDs are all well-formed, within the bounds, or is refused with a 400;
// it never panics.
func FuzzParseMissingEvents(f *testing.F) {
	id := "$" + "A123456789012345678901234567890123456789012"
	for _, s := range []string{
		`{"earliest_events":[],"latest_events":["` + id + `"],"limit":10,"min_depth":0}`,
		`{"latest_events":["x"]}`, `{"latest_events":[]}`, `[]`, `{`, `{"limit":-1,"latest_events":["` + id + `"]}`,
		`{"latest_events":["` + id + `"],"min_depth":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, aerr := ParseMissingEvents(body)
		if aerr != nil {
			if aerr.Status != 400 {
				t.Fatalf("refusal status = %d, want 400", aerr.Status)
			}
			return
		}
		if len(req.LatestEvents) == 0 || len(req.LatestEvents) > maxFromEvents || len(req.EarliestEvents) > maxFromEvents || req.Limit < 0 {
			t.Fatalf("accepted out-of-bounds request %+v", req)
		}
		for _, list := range [][]string{req.EarliestEvents, req.LatestEvents} {
			for _, e := range list {
				if !pdu.ValidEventID(e) {
					t.Fatalf("accepted bad event ID %q", e)
				}
			}
		}
	})
}
