package serveracl_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/federation/serveracl"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"*", "", true},
		{"*", "example.org", true},
		{"example.org", "example.org", true},
		{"example.org", "example.com", false},
		{"*.example.org", "matrix.example.org", true},
		{"*.example.org", "example.org", false},
		{"*example.org", "example.org", true},
		{"?.org", "a.org", true},
		{"?.org", "ab.org", false},
		{"??", "a", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a**", "a", true},
		{"", "", true},
		{"", "a", false},
		{"*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 200), false}, // no blow-up
	}
	for _, tt := range tests {
		if got := serveracl.Match(tt.glob, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.glob, tt.name, got, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		name    string
		content string
		server  string
		want    bool
	}{
		{"allow all", `{"allow":["*"]}`, "example.org", true},
		{"port ignored", `{"allow":["example.org"]}`, "example.org:8448", true},
		{"deny wins", `{"allow":["*"],"deny":["evil.org"]}`, "evil.org", false},
		{"deny glob with port", `{"allow":["*"],"deny":["*.evil.org"]}`, "a.evil.org:443", false},
		{"deny case-insensitive", `{"allow":["*"],"deny":["EVIL.org"]}`, "evil.ORG", false},
		{"not in allow", `{"allow":["good.org"]}`, "other.org", false},
		{"no allow denies all", `{"deny":[]}`, "example.org", false},
		{"empty content denies all", `{}`, "example.org", false},
		{"ipv4 literal allowed by default", `{"allow":["*"]}`, "1.2.3.4:8448", true},
		{"ipv4 literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4", false},
		{"ipv6 literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "[::1]:8448", false},
		{"ipv6 literal allowed", `{"allow":["*"]}`, "[::1]", true},
		{"ipv6 host matched in brackets", `{"allow":["[::1]"]}`, "[::1]:80", true},
		{"non-boolean ip switch is true", `{"allow":["*"],"allow_ip_literals":"no"}`, "1.2.3.4", true},
		{"dns name like ip is not literal", `{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4.example", true},
		{"allow not a list", `{"allow":"*"}`, "example.org", false},
		{"non-string entries skipped", `{"allow":[1,null,"example.org"]}`, "example.org", true},
		{"deny not a list is empty", `{"allow":["*"],"deny":"*"}`, "example.org", true},
		{"not an object", `[]`, "example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serveracl.Parse([]byte(tt.content)).Allowed(tt.server); got != tt.want {
				t.Errorf("Parse(%s).Allowed(%q) = %v, want %v", tt.content, tt.server, got, tt.want)
			}
		})
	}
	if !serveracl.AllowAll().Allowed("anything:1") {
		t.Errorf("AllowAll().Allowed = false, want true")
	}
	var nilACL *serveracl.ACL
	if nilACL.Allowed("example.org") {
		t.Errorf("(*ACL)(nil).Allowed = true, want false")
	}
}

func FuzzAllowed(f *testing.F) {
	f.Add([]byte(`{"allow":["*.org","a?c"],"deny":["*evil*"],"allow_ip_literals":false}`), "x.evil.org:80")
	f.Fuzz(func(t *testing.T, content []byte, server string) {
		serveracl.Parse(content).Allowed(server)
	})
}
