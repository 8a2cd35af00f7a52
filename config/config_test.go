package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/parley-im/parley/accounts/password"
)

// env returns a getenv backed by m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeConfig writes body to a config file in a fresh directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	c := Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"server_name", c.ServerName, "localhost"},
		{"listen", c.Listen, "127.0.0.1:8008"},
		{"public_base_url", c.PublicBaseURL, "http://127.0.0.1:8008"},
		{"data_dir", c.DataDir, "./parley-data"},
		{"database_url", c.DatabaseURL, ""},
		{"registration.mode", c.Registration.Mode, "closed"},
		{"registration.tokens", c.Registration.Tokens, []string(nil)},
		{"media.max_upload_bytes", c.Media.MaxUploadBytes, int64(52428800)},
		{"rate_limit.enabled", c.RateLimit.Enabled, true},
		{"rate_limit.per_user", c.RateLimit.PerUser, Bucket{10, 50}},
		{"rate_limit.per_ip", c.RateLimit.PerIP, Bucket{20, 100}},
		{"rate_limit.message", c.RateLimit.Message, Bucket{5, 100}},
		{"rate_limit.join", c.RateLimit.Join, Bucket{0.1, 10}},
		{"rate_limit.invite_per_room", c.RateLimit.InvitePerRoom, Bucket{0.3, 10}},
		{"rate_limit.invite_per_user", c.RateLimit.InvitePerUser, Bucket{0.003, 5}},
		{"rate_limit.create_room", c.RateLimit.CreateRoom, Bucket{0.05, 10}},
		{"rate_limit.media_upload", c.RateLimit.MediaUpload, Bucket{1, 30}},
		{"rate_limit.per_device", c.RateLimit.PerDevice, Bucket{50, 300}},
		{"passwords.concurrency", c.Passwords.Concurrency, max(1, runtime.GOMAXPROCS(0)-1)},
		{"passwords.argon2_memory_kib", c.Passwords.Argon2MemoryKiB, uint32(19456)},
		{"passwords.argon2_time", c.Passwords.Argon2Time, uint32(2)},
		{"sync.max_timeout_ms", c.Sync.MaxTimeoutMs, int64(60000)},
		{"sync.default_timeline_limit", c.Sync.DefaultTimelineLimit, 10},
		{"graph", c.Graph, Graph{}},
		{"log", c.Log, Log{Level: "info", Format: "text"}},
		{"IsPostgres", c.IsPostgres(), false},
		{"SQLitePath", c.SQLitePath(), filepath.Join("parley-data", "parley.db")},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Default().%s = %#v; want %#v", tt.name, tt.got, tt.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v; want nil", err)
	}
}

func TestLoadNoFileIsDefault(t *testing.T) {
	for _, getenv := range []func(string) string{nil, env(nil)} {
		c, err := Load("", getenv)
		if err != nil {
			t.Fatalf("Load(\"\") error: %v", err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Load(\"\") = %+v; want Default() %+v", c, Default())
		}
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(c Config) (got, want any)
	}{
		{"empty file is defaults", "", func(c Config) (any, any) { return c, Default() }},
		{"comments only is defaults", "# nothing\n", func(c Config) (any, any) { return c, Default() }},
		{"value set", "server_name: example.org\n",
			func(c Config) (any, any) { return c.ServerName, "example.org" }},
		{"siblings keep defaults", "registration:\n  mode: open\n",
			func(c Config) (any, any) { return c.Registration, Registration{Mode: "open"} }},
		{"zero means default", "media:\n  max_upload_bytes: 0\n",
			func(c Config) (any, any) { return c.Media.MaxUploadBytes, int64(50 << 20) }},
		{"zero rate means default", "rate_limit:\n  per_ip: {per_second: 0, burst: 7}\n",
			func(c Config) (any, any) { return c.RateLimit.PerIP, Bucket{20, 7} }},
		{"explicit false disables", "rate_limit:\n  enabled: false\n",
			func(c Config) (any, any) { return c.RateLimit.Enabled, false }},
		{"section without enabled keeps true", "rate_limit:\n  exempt: ['@bot:example.org']\n",
			func(c Config) (any, any) { return c.RateLimit.Enabled, true }},
		{"empty section keeps defaults", "rate_limit:\n",
			func(c Config) (any, any) { return c.RateLimit, Default().RateLimit }},
		{"public_base_url follows listen", "listen: 0.0.0.0:9000\n",
			func(c Config) (any, any) { return c.PublicBaseURL, "http://localhost:9000" }},
		{"public_base_url follows IPv6 listen", "listen: '[::1]:9000'\n",
			func(c Config) (any, any) { return c.PublicBaseURL, "http://[::1]:9000" }},
		{"public_base_url set", "listen: ':8008'\npublic_base_url: https://matrix.example.org\n",
			func(c Config) (any, any) { return c.PublicBaseURL, "https://matrix.example.org" }},
		{"tokens", "registration:\n  mode: token\n  tokens: [abc, d.e_f~g-h]\n",
			func(c Config) (any, any) { return c.Registration.Tokens, []string{"abc", "d.e_f~g-h"} }},
		{"postgres", "database_url: postgresql://parley@db/parley?sslmode=disable\n",
			func(c Config) (any, any) { return []any{c.IsPostgres(), c.SQLitePath()}, []any{true, ""} }},
		{"sqlite in data_dir", "data_dir: /var/lib/parley\n",
			func(c Config) (any, any) { return c.SQLitePath(), "/var/lib/parley/parley.db" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.body), nil)
			if err != nil {
				t.Fatalf("Load error: %v", err)
			}
			if got, want := tt.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v; want %#v", got, want)
			}
		})
	}
}

// TestLoadEnvBeatsFile sets each key in the file and the environment, and
// expects the environment's value.
func TestLoadEnvBeatsFile(t *testing.T) {
	file := `server_name: file.example
listen: 127.0.0.1:1111
public_base_url: https://file.example
data_dir: /file
database_url: postgres://file/db
registration: {mode: open}
graph: {neo4j_url: "bolt://file:7687"}
log: {level: debug}
`
	tests := []struct {
		name, value string
		field       func(c Config) string
	}{
		{"PARLEY_SERVER_NAME", "env.example:8448", func(c Config) string { return c.ServerName }},
		{"PARLEY_LISTEN", "[::]:2222", func(c Config) string { return c.Listen }},
		{"PARLEY_PUBLIC_BASE_URL", "https://env.example", func(c Config) string { return c.PublicBaseURL }},
		{"PARLEY_DATA_DIR", "/env", func(c Config) string { return c.DataDir }},
		{"PARLEY_DATABASE_URL", "postgresql://env/db", func(c Config) string { return c.DatabaseURL }},
		{"PARLEY_REGISTRATION", "token", func(c Config) string { return c.Registration.Mode }},
		{"PARLEY_NEO4J_URL", "neo4j+s://env:7687", func(c Config) string { return c.Graph.Neo4jURL }},
		{"PARLEY_LOG_LEVEL", "warn", func(c Config) string { return c.Log.Level }},
	}
	path := writeConfig(t, file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(path, env(map[string]string{tt.name: tt.value}))
			if err != nil {
				t.Fatalf("Load error: %v", err)
			}
			if got := tt.field(c); got != tt.value {
				t.Errorf("with %s=%q: got %q; want %q", tt.name, tt.value, got, tt.value)
			}
		})
	}

	// An empty variable counts as unset: the file's value stays.
	c, err := Load(path, env(map[string]string{"PARLEY_SERVER_NAME": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "file.example" {
		t.Errorf("with PARLEY_SERVER_NAME empty: got %q; want the file's %q", c.ServerName, "file.example")
	}
}

func TestLoadEnvListenDerivesPublicBaseURL(t *testing.T) {
	c, err := Load(writeConfig(t, "listen: 127.0.0.1:1111\n"), env(map[string]string{"PARLEY_LISTEN": ":2222"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.PublicBaseURL, "http://localhost:2222"; got != want {
		t.Errorf("PublicBaseURL = %q; want %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		body string // "-" means no such file
		env  map[string]string
		want []string // substrings of the error
		not  string   // must not appear in the error
	}{
		{name: "missing file", body: "-", want: []string{"reading config", "no such file"}},
		{name: "unknown top-level key", body: "server_nmae: x\n", want: []string{"server_nmae", "line 1"}},
		{name: "unknown nested key", body: "media:\n  max_upload: 5\n", want: []string{"max_upload", "line 2"}},
		{name: "wrong type", body: "media:\n  max_upload_bytes: 50MB\n", want: []string{"50MB"}},
		{name: "negative into unsigned", body: "passwords:\n  argon2_time: -1\n", want: []string{"-1"}},
		{name: "duplicate key", body: "listen: a:1\nlisten: b:2\n", want: []string{"listen", "already defined"}},
		{name: "two documents", body: "listen: a:1\n---\nlisten: b:2\n", want: []string{"second YAML document"}},
		{name: "not a mapping", body: "- a\n- b\n", want: []string{"cannot unmarshal"}},
		{name: "invalid value names key", body: "registration:\n  mode: invite\n", want: []string{"registration.mode", `"invite"`, "closed, open, token"}},
		{name: "several errors at once", body: "listen: nope\nlog: {format: xml}\n", want: []string{"listen:", "log.format:"}},
		{name: "env error names variable", env: map[string]string{"PARLEY_REGISTRATION": "invite"},
			want: []string{"PARLEY_REGISTRATION", `"invite"`}},
		{name: "env bad listen", env: map[string]string{"PARLEY_LISTEN": "8008"}, want: []string{"PARLEY_LISTEN", "host:port"}},
		{name: "database password not echoed", body: "database_url: mysql://u:hunter2@db/x\n",
			want: []string{"database_url", `"mysql"`}, not: "hunter2"},
		{name: "database password not echoed by parse error", env: map[string]string{"PARLEY_DATABASE_URL": "postgres://u:hunter2@db:port/x"},
			want: []string{"PARLEY_DATABASE_URL", "not a URL"}, not: "hunter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			switch tt.body {
			case "":
			case "-":
				path = filepath.Join(t.TempDir(), "absent.yaml")
			default:
				path = writeConfig(t, tt.body)
			}
			_, err := Load(path, env(tt.env))
			if err == nil {
				t.Fatalf("Load succeeded; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q; want it to contain %q", err, w)
				}
			}
			if tt.not != "" && strings.Contains(err.Error(), tt.not) {
				t.Errorf("error %q; want it not to contain %q", err, tt.not)
			}
		})
	}
}

func TestArgon2BoundsMatchPasswordPackage(t *testing.T) {
	if maxArgon2MemoryKiB != password.MaxMemoryKiB || maxArgon2Time != password.MaxTime {
		t.Errorf("config bounds m=%d t=%d; want accounts/password's m=%d t=%d",
			maxArgon2MemoryKiB, maxArgon2Time, password.MaxMemoryKiB, password.MaxTime)
	}
	d := Default().Passwords
	if d.Argon2MemoryKiB != password.DefaultMemoryKiB || d.Argon2Time != password.DefaultTime {
		t.Errorf("config defaults m=%d t=%d; want accounts/password's m=%d t=%d",
			d.Argon2MemoryKiB, d.Argon2Time, password.DefaultMemoryKiB, password.DefaultTime)
	}
}
