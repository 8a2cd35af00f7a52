package homeserver

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/parley-im/parley/federation/outbound"
)

// TestFedTransportResults: only non-empty per-PDU errors become
// Result.PDUErrors, and EDUs go out as the wire's objects.
func TestFedTransportResults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"none", nil, nil},
		{"all accepted", map[string]string{"$a": "", "$b": ""}, nil},
		{"one refused", map[string]string{"$a": "", "$b": "rejected"}, map[string]string{"$b": "rejected"}},
	} {
		if got := pduErrors(tc.in); !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: pduErrors = %v, want %v", tc.name, got, tc.want)
		}
	}
	got, err := marshalEDUs([]outbound.EDU{{Type: "m.typing", Content: json.RawMessage(`{"typing":true}`)}})
	if err != nil || len(got) != 1 || string(got[0]) != `{"edu_type":"m.typing","content":{"typing":true}}` {
		t.Errorf("marshalEDUs = %s, %v; want one m.typing object", got, err)
	}
	if got, err := marshalEDUs(nil); got != nil || err != nil {
		t.Errorf("marshalEDUs(nil) = %s, %v; want nil", got, err)
	}
}
