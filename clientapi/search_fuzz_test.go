package clientapi

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/apierr"
)

// FuzzParseSearch: any body and next_batch parse without panic into a
// request or a 400 M_BAD_JSON / M_INVALID_PARAM; an accepted request has
// no negative limits.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		`{"search_categories":{"room_events":{"search_term":"北京","order_by":"rank","filter":{"limit":3,"rooms":["!a:x"]}}}}`,
		`{"search_categories":{"room_events":{"search_term":"x","event_context":{"before_limit":1,"after_limit":2,"include_profile":true},"groupings":{"group_by":[{"key":"room_id"}]}}}}`,
		`{"search_categories":{"room_events":{"search_term":7}}}`,
		`{"search_categories":{}}`,
		`[]`, `null`, `{"search_categories":{"room_events":{"search_term":"x","filter":{"limit":-1}}}}`,
	} {
		f.Add([]byte(s), "p12")
	}
	f.Fuzz(func(t *testing.T, body []byte, next string) {
		req, _, err := parseSearch(body, next)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Status != 400 || (ae.Code != "M_BAD_JSON" && ae.Code != "M_INVALID_PARAM") {
				t.Fatalf("parseSearch(%q) = %v, want a 400 M_BAD_JSON or M_INVALID_PARAM", body, err)
			}
			return
		}
		if req.Limit < 0 || req.Before < 0 || req.After < 0 {
			t.Fatalf("parseSearch(%q) accepted negative limits: %+v", body, req)
		}
	})
}
