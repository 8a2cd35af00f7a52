package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Load builds the configuration: defaults, then the YAML file at path (""
// means no file), then environment overrides read through getenv (nil means
// none), then Validate. The environment wins over the file so that one file
// can serve several deployments that differ only in a few settings.
func Load(path string, getenv func(string) string) (Config, error) {
	// Start bare rather than from Default, so that derived defaults
	// (public_base_url from listen) follow the file and environment.
	c := Config{RateLimit: RateLimit{Enabled: true}}
	where := "config"
	if path != "" {
		where = "config " + path
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading config: %w", err)
		}
		if err := decode(data, &c); err != nil {
			return Config{}, fmt.Errorf("%s: %w", where, err)
		}
	}
	if err := c.ApplyEnv(getenv); err != nil {
		return Config{}, fmt.Errorf("config environment: %w", err)
	}
	c.fillDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}

// decode reads one YAML document into c, keeping the values of keys it does
// not mention. An unknown key is an error naming it and its line: a typo
// would otherwise silently leave a setting at its default.
func decode(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) { // empty file: all defaults
			return nil
		}
		return err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return fmt.Errorf("line %d: a second YAML document; the config is one document", extra.Line)
	case !errors.Is(err, io.EOF):
		return err
	}
	return nil
}

// ApplyEnv overrides c with the PARLEY_* variables that getenv reports as set
// (non-empty):
//
//	PARLEY_SERVER_NAME      server_name
//	PARLEY_LISTEN           listen
//	PARLEY_PUBLIC_BASE_URL  public_base_url
//	PARLEY_DATA_DIR         data_dir
//	PARLEY_DATABASE_URL     database_url
//	PARLEY_REGISTRATION     registration.mode
//	PARLEY_NEO4J_URL        graph.neo4j_url
//	PARLEY_LOG_LEVEL        log.level
//	PARLEY_DEFAULT_ROOM_VERSION default_room_version
//
// and the PARLEY_FEDERATION_* variables (applyFederationEnv, federation.go).
//
// Each value is checked as it is applied, and an error names the variable,
// which Validate could not. A nil getenv applies nothing.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	vars := []struct {
		name  string
		field *string
		check func(string) error // nil: any value goes
	}{
		{"PARLEY_SERVER_NAME", &c.ServerName, checkServerName},
		{"PARLEY_LISTEN", &c.Listen, checkListen},
		{"PARLEY_PUBLIC_BASE_URL", &c.PublicBaseURL, checkBaseURL},
		{"PARLEY_DATA_DIR", &c.DataDir, nil},
		{"PARLEY_DATABASE_URL", &c.DatabaseURL, checkDatabaseURL},
		{"PARLEY_REGISTRATION", &c.Registration.Mode, checkRegistrationMode},
		{"PARLEY_NEO4J_URL", &c.Graph.Neo4jURL, checkNeo4jURL},
		{"PARLEY_LOG_LEVEL", &c.Log.Level, checkLogLevel},
		{"PARLEY_DEFAULT_ROOM_VERSION", &c.DefaultRoomVersion, checkRoomVersion},
	}
	var errs []error
	for _, v := range vars {
		value := getenv(v.name)
		if value == "" {
			continue
		}
		if v.check != nil {
			if err := v.check(value); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
				continue
			}
		}
		*v.field = value
	}
	errs = append(errs, c.applyFederationEnv(getenv)) // see federation.go
	return errors.Join(errs...)
}
