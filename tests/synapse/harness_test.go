package synapse_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/tests/interop"
)

// synapse is the running Synapse that scripts/synapse-start.sh exported.
type synapse struct {
	URL    string // client API, plain HTTP
	Name   string // server name, port included
	FedURL string // https:// federation listener (the server name is IP:port)
	Secret string // registration_shared_secret
	Dir    string // its state directory, for a stop and restart
}

// needSynapse returns the Synapse to test against, or skips the test with
// the command that starts one.
func needSynapse(t *testing.T) *synapse {
	t.Helper()
	s := &synapse{URL: os.Getenv("PARLEY_TEST_SYNAPSE_URL"), Name: os.Getenv("PARLEY_TEST_SYNAPSE_SERVER_NAME"),
		Secret: os.Getenv("PARLEY_TEST_SYNAPSE_SECRET"), Dir: os.Getenv("PARLEY_TEST_SYNAPSE_DIR")}
	if s.URL == "" || s.Name == "" || s.Secret == "" {
		t.Skip("PARLEY_TEST_SYNAPSE_URL, _SERVER_NAME and _SECRET not set: no Synapse to test against " +
			`(run: eval "$(scripts/synapse-start.sh)")`)
	}
	s.FedURL = "https://" + s.Name
	return s
}

// uniq returns a name unique to this run and call (tests/interop).
func uniq(name string) string { return interop.Uniq(name) }

// Register makes a user on Synapse through the shared-secret admin API
// (registration is closed there) and returns a logged-in client.
func (s *synapse) Register(t *testing.T, name string) *hstest.Client {
	t.Helper()
	return interop.Register(t, s.URL, s.Secret, name)
}

// fedGet fetches a path from a federation listener without signing (key
// server endpoints), self-signed certificates accepted.
func fedGet(t *testing.T, base, path string) gjson.Result {
	t.Helper()
	res, err := hstest.FedHTTP().Get(base + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s%s = %d %s, want 200", base, path, res.StatusCode, raw)
	}
	return gjson.ParseBytes(raw)
}

// fedPost posts JSON to a federation listener without signing.
func fedPost(t *testing.T, base, path string, body any) gjson.Result {
	t.Helper()
	raw, _ := json.Marshal(body)
	res, err := hstest.FedHTTP().Post(base+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("POST %s%s: %v", base, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("POST %s%s = %d %s, want 200", base, path, res.StatusCode, out)
	}
	return gjson.ParseBytes(out)
}

// startParley starts a federating Parley on 127.0.0.2, which Synapse may
// reach (its ip_range_whitelist is 127.0.0.0/8). Its server name is
// 127.0.0.2:<port>.
func startParley(t *testing.T, st hstest.Store) *hstest.Server {
	t.Helper()
	return hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st}})
}

// hstestSQLite is the SQLite store, for the tests whose point is the wire,
// not the store (homeserver's Parley-with-Parley tests run those paths on
// both stores), or that are too slow to run twice. The tests where Parley
// stores what Synapse sent (joins, membership, invites) use stores.
var hstestSQLite = hstest.Store{Name: "sqlite"}

// stores is hstest.Stores, or SQLite alone with -short.
func stores(t *testing.T) []hstest.Store {
	if testing.Short() {
		return []hstest.Store{{Name: "sqlite"}}
	}
	return hstest.Stores(t)
}

// script runs one of the repository's scripts/ (synapse-stop.sh,
// synapse-start.sh) on this Synapse's state directory.
func (s *synapse) script(t *testing.T, name string, args ...string) string {
	t.Helper()
	if s.Dir == "" {
		t.Skip("PARLEY_TEST_SYNAPSE_DIR not set: cannot stop and restart Synapse")
	}
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "PARLEY_SYNAPSE_DIR="+s.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// gjEsc escapes gjson's path characters in a key (user IDs hold dots and
// colons are fine; server names with IPs hold dots).
func gjEsc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '|', '#', '@', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
