package config

import (
	"math"
	"strings"
	"testing"
)

func TestValidateFederationInbound(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f *FederationInbound)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(f *FederationInbound) {}, ""},
		{"limit off", func(f *FederationInbound) { f.OriginPerSecond = -1 }, ""},
		{"NaN rate", func(f *FederationInbound) { f.OriginPerSecond = math.NaN() }, "federation_inbound: origin_per_second NaN"},
		{"infinite rate", func(f *FederationInbound) { f.OriginPerSecond = math.Inf(1) }, "origin_per_second +Inf"},
		{"negative rooms", func(f *FederationInbound) { f.MaxRooms = -1 }, "must not be negative"},
		{"negative body", func(f *FederationInbound) { f.MaxBodyBytes = -1 }, "must not be negative"},
		{"missing events too small", func(f *FederationInbound) { f.MissingEventsLimit = 5 }, "missing_events_limit 5 is outside 10 to 20"},
		{"missing events too big", func(f *FederationInbound) { f.MissingEventsLimit = 50 }, "outside 10 to 20"},
		{"missing events 10", func(f *FederationInbound) { f.MissingEventsLimit = 10 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c.FederationInbound)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
