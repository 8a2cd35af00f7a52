package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSampleRoundTrip(t *testing.T) {
	c, err := Load(writeConfig(t, Sample()), nil)
	if err != nil {
		t.Fatalf("Load(Sample()) error: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(Sample()) = %+v; want Default() %+v", c, Default())
	}
}

// TestSampleShowsDefaults decodes the sample without filling defaults, so a
// sample that wrote 0 where it should show the default would fail here even
// though it round-trips.
func TestSampleShowsDefaults(t *testing.T) {
	var got Config
	if err := decode([]byte(Sample()), &got); err != nil {
		t.Fatal(err)
	}
	want := Default()
	// The two defaults that depend on context are left empty on purpose,
	// with a comment saying what empty means.
	want.PublicBaseURL = ""
	want.Passwords.Concurrency = 0
	want.Registration.Tokens = []string{}
	want.RateLimit.Exempt = []string{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sample() decodes to %+v; want %+v", got, want)
	}
}

// TestSampleHasEveryKey compares the keys in the sample with the yaml tags of
// Config, so a field added without a sample line fails.
func TestSampleHasEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(Sample()), &doc); err != nil {
		t.Fatal(err)
	}
	got := sampleKeys(doc.Content[0], "")
	want := structKeys(reflect.TypeFor[Config](), "")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("sample keys %v; want %v", got, want)
	}
	for _, key := range want {
		leaf := key[strings.LastIndexByte(key, '.')+1:]
		if !strings.Contains(Sample(), "\n"+strings.Repeat(" ", 2*strings.Count(key, "."))+leaf+":") {
			t.Errorf("sample has no line for %s", key)
		}
	}
}

func sampleKeys(n *yaml.Node, prefix string) []string {
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := prefix+n.Content[i].Value, n.Content[i+1]
		if value.Kind == yaml.MappingNode {
			keys = append(keys, sampleKeys(value, key+".")...)
		} else {
			keys = append(keys, key)
		}
	}
	return keys
}

func structKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, structKeys(f.Type, key+".")...)
		} else {
			keys = append(keys, key)
		}
	}
	return keys
}
