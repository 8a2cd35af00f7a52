package config

import (
	"strings"
	"testing"
)

func TestFederationEnv(t *testing.T) {
	env := map[string]string{
		"PARLEY_SERVER_NAME":                     "127.0.0.2:18448",
		"PARLEY_FEDERATION_LISTEN":               "127.0.0.2:18448",
		"PARLEY_FEDERATION_TLS_CERT":             "/etc/parley/fed.crt",
		"PARLEY_FEDERATION_TLS_KEY":              "/etc/parley/fed.key",
		"PARLEY_FEDERATION_ALLOW_IPS":            "127.0.0.0/8, 10.1.2.3",
		"PARLEY_FEDERATION_INSECURE_SKIP_VERIFY": "true",
	}
	c, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("Load = %v, want no error", err)
	}
	f := c.Federation
	if c.ServerName != "127.0.0.2:18448" || f.Listen != "127.0.0.2:18448" || f.TLSCert != "/etc/parley/fed.crt" ||
		f.TLSKey != "/etc/parley/fed.key" || !f.InsecureSkipVerify || f.KeyValidityHours != 24 {
		t.Errorf("Load = server_name %q federation %+v", c.ServerName, f)
	}
	if got := f.AllowPrefixes(); len(got) != 2 || got[0].String() != "127.0.0.0/8" || got[1].String() != "10.1.2.3/32" {
		t.Errorf("AllowPrefixes() = %v, want [127.0.0.0/8 10.1.2.3/32]", got)
	}
}

func TestFederationEnvErrors(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"PARLEY_FEDERATION_ALLOW_IPS", "127.0.0.0/8,not-an-ip", "PARLEY_FEDERATION_ALLOW_IPS"},
		{"PARLEY_FEDERATION_INSECURE_SKIP_VERIFY", "yes please", "PARLEY_FEDERATION_INSECURE_SKIP_VERIFY"},
		{"PARLEY_FEDERATION_LISTEN", "nope", "PARLEY_FEDERATION_LISTEN"},
		{"PARLEY_FEDERATION_TLS_CERT", "/only/cert.pem", "set both or neither"},
	} {
		_, err := Load("", func(k string) string {
			if k == tc.name {
				return tc.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s=%q) error = %v, want one naming %q", tc.name, tc.value, err, tc.want)
		}
	}
}

func TestFederationValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Federation
		want string // "" = valid
	}{
		{"off", Federation{}, ""},
		{"well-known with port", Federation{WellKnownServer: "matrix.example.org:443"}, ""},
		{"bad well-known", Federation{WellKnownServer: "a b"}, "well_known_server"},
		{"bad notary", Federation{KeyNotaries: "matrix.org, bad name"}, "key_notaries"},
		{"negative validity", Federation{KeyValidityHours: -1}, "key_validity_hours"},
	} {
		c := Default()
		c.Federation = tc.f
		c.Federation.fillDefaults()
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestFederationRetryEnv: the outbound retry backoff bounds default to 2 s
// and 1 h, take env overrides, and refuse nonsense.
func TestFederationRetryEnv(t *testing.T) {
	for _, tc := range []struct {
		name             string
		env              map[string]string
		wantMin, wantMax int
		wantErr          string
	}{
		{"defaults", nil, 2000, 3600000, ""},
		{"env", map[string]string{"PARLEY_FEDERATION_RETRY_MIN_MS": "50", "PARLEY_FEDERATION_RETRY_MAX_MS": "500"}, 50, 500, ""},
		{"not a number", map[string]string{"PARLEY_FEDERATION_RETRY_MIN_MS": "soon"}, 0, 0, "PARLEY_FEDERATION_RETRY_MIN_MS"},
		{"max below min", map[string]string{"PARLEY_FEDERATION_RETRY_MIN_MS": "5000", "PARLEY_FEDERATION_RETRY_MAX_MS": "10"}, 0, 0, "retry_max_ms"},
	} {
		c, err := Load("", func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: Load error = %v, want one naming %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Load = %v", tc.name, err)
		}
		if got := c.Federation; got.RetryMinMS != tc.wantMin || got.RetryMaxMS != tc.wantMax {
			t.Errorf("%s: retry = %d..%d ms, want %d..%d", tc.name, got.RetryMinMS, got.RetryMaxMS, tc.wantMin, tc.wantMax)
		}
	}
}
