package config

import (
	"math"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"zero config", func(c *Config) { *c = Config{} }, ""},
		{"listen all interfaces", func(c *Config) { c.Listen = ":8008" }, ""},
		{"listen port 0", func(c *Config) { c.Listen = "localhost:0" }, ""},
		{"listen IPv6", func(c *Config) { c.Listen = "[::]:8008" }, ""},
		{"listen no port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen: \"127.0.0.1\" is not host:port"},
		{"listen named port", func(c *Config) { c.Listen = "127.0.0.1:http" }, "listen: \"127.0.0.1:http\": port \"http\" is not a number"},
		{"listen port too big", func(c *Config) { c.Listen = "127.0.0.1:65536" }, "is not a number from 0 to 65535"},
		{"listen bad host", func(c *Config) { c.Listen = "exa_mple:80" }, "is neither an IP address nor a host name"},
		{"server name bad", func(c *Config) { c.ServerName = "exa mple.org" }, "server_name: \"exa mple.org\""},
		{"public URL https path", func(c *Config) { c.PublicBaseURL = "https://example.org/matrix" }, ""},
		{"public URL no scheme", func(c *Config) { c.PublicBaseURL = "example.org" }, "public_base_url: \"example.org\" is not an http:// or https:// URL"},
		{"public URL ftp", func(c *Config) { c.PublicBaseURL = "ftp://example.org" }, "is not an http:// or https:// URL"},
		{"public URL query", func(c *Config) { c.PublicBaseURL = "https://example.org/?a=b" }, "no user, query or fragment"},
		{"postgres", func(c *Config) { c.DatabaseURL = "postgres://u:p@localhost:5432/parley" }, ""},
		{"postgresql socket", func(c *Config) { c.DatabaseURL = "postgresql:///parley?host=/run/postgresql" }, ""},
		{"postgres upper case scheme", func(c *Config) { c.DatabaseURL = "POSTGRES://db/parley" }, ""},
		{"sqlite URL", func(c *Config) { c.DatabaseURL = "sqlite:///tmp/x.db" }, "database_url: unsupported scheme \"sqlite\""},
		{"database path", func(c *Config) { c.DatabaseURL = "/tmp/x.db" }, "database_url: not a URL: no scheme"},
		{"registration mode", func(c *Config) { c.Registration.Mode = "invite" }, "registration.mode: unknown registration mode \"invite\""},
		{"token mode without tokens", func(c *Config) { c.Registration.Mode = "token" }, ""},
		{"token bad char", func(c *Config) { c.Registration.Tokens = []string{"ok", "no/slash"} }, "registration.tokens[1]: a token has only"},
		{"token empty", func(c *Config) { c.Registration.Tokens = []string{""} }, "registration.tokens[0]: a token has 1 to 64"},
		{"token too long", func(c *Config) { c.Registration.Tokens = []string{strings.Repeat("a", 65)} }, "this one 65"},
		{"negative upload", func(c *Config) { c.Media.MaxUploadBytes = -1 }, "media.max_upload_bytes: -1 is negative"},
		{"negative rate", func(c *Config) { c.RateLimit.PerUser.PerSecond = -1 }, "rate_limit.per_user.per_second: -1 is not"},
		{"NaN rate", func(c *Config) { c.RateLimit.PerIP.PerSecond = math.NaN() }, "rate_limit.per_ip.per_second: NaN"},
		{"infinite rate", func(c *Config) { c.RateLimit.PerIP.PerSecond = math.Inf(1) }, "rate_limit.per_ip.per_second: +Inf"},
		{"negative burst", func(c *Config) { c.RateLimit.PerIP.Burst = -5 }, "rate_limit.per_ip.burst: -5 is negative"},
		{"exempt ok", func(c *Config) { c.RateLimit.Exempt = []string{"@bot:example.org", "@b:[::1]:8448"} }, ""},
		{"exempt no sigil", func(c *Config) { c.RateLimit.Exempt = []string{"bot:example.org"} }, "rate_limit.exempt[0]: \"bot:example.org\" is not a user ID"},
		{"exempt no server", func(c *Config) { c.RateLimit.Exempt = []string{"@bot"} }, "is not a user ID"},
		{"exempt bad server", func(c *Config) { c.RateLimit.Exempt = []string{"@bot:exa mple"} }, "rate_limit.exempt[0]: \"@bot:exa mple\": server name"},
		{"negative concurrency", func(c *Config) { c.Passwords.Concurrency = -1 }, "passwords.concurrency: -1 is negative"},
		{"argon2 memory in bytes", func(c *Config) { c.Passwords.Argon2MemoryKiB = 19 << 20 }, "passwords.argon2_memory_kib: 19922944 is outside 8 to 2097152 (KiB, not bytes)"},
		{"argon2 memory tiny", func(c *Config) { c.Passwords.Argon2MemoryKiB = 4 }, "passwords.argon2_memory_kib: 4 is outside"},
		{"argon2 time", func(c *Config) { c.Passwords.Argon2Time = 65 }, "passwords.argon2_time: 65 is above the limit of 64"},
		{"negative sync timeout", func(c *Config) { c.Sync.MaxTimeoutMs = -1 }, "sync.max_timeout_ms: -1 is negative"},
		{"negative timeline limit", func(c *Config) { c.Sync.DefaultTimelineLimit = -1 }, "sync.default_timeline_limit: -1 is negative"},
		{"neo4j", func(c *Config) { c.Graph.Neo4jURL = "neo4j+s://graph.example.org:7687" }, ""},
		{"neo4j scheme", func(c *Config) { c.Graph.Neo4jURL = "http://u:secret@graph:7474" }, "graph.neo4j_url: unknown Neo4j URL scheme \"http\""},
		{"neo4j no host", func(c *Config) { c.Graph.Neo4jURL = "bolt:///x" }, "graph.neo4j_url: the URL has no host"},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level: unknown log level \"trace\" (want debug, info, warn, error)"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format: unknown log format \"xml\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate() = nil; want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate() = %q; want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Validate() = %q; want no credentials in it", err)
			}
		})
	}
}

func TestCheckServerName(t *testing.T) {
	tests := []struct {
		name  string
		valid bool
	}{
		{"localhost", true},
		{"example.org", true},
		{"matrix.example.org:8448", true},
		{"Example-1.ORG", true},
		{"1.2.3.4", true},
		{"1.2.3.4:1", true},
		{"[::1]", true},
		{"[2001:db8::1]:65535", true},
		{"[::ffff:1.2.3.4]", true},
		{strings.Repeat("a", 255), true},
		{"", false},
		{":8448", false},
		{"example.org:", false},
		{"example.org:0", false},
		{"example.org:65536", false},
		{"example.org:123456", false},
		{"example.org:+80", false},
		{"example.org:80:80", false},
		{"exa_mple.org", false},
		{"exämple.org", false},
		{"example.org/path", false},
		{"::1", false},
		{"[::1", false},
		{"[::1]x", false},
		{"[1.2.3.4]", false},
		{"[fe80::1%eth0]", false},
		{"[example.org]", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		err := checkServerName(tt.name)
		if got := err == nil; got != tt.valid {
			t.Errorf("checkServerName(%q) = %v; want valid=%v", tt.name, err, tt.valid)
		}
	}
}
