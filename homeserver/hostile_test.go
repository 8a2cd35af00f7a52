package homeserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestNoRouteFailsOnHostileInput walks every route the server has and sends
// each odd path parameters and malformed bodies. Every answer must be a
// client error or success with a Matrix error body, never a 5xx: bad input
// gets a clear error and the process carries on.
func TestNoRouteFailsOnHostileInput(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"name": "target"})
	routes, ok := srv.Srv.Handler().(chi.Routes)
	if !ok {
		t.Fatal("handler is not a chi router")
	}
	params := []string{hstest.Esc(room), "%00", strings.Repeat("x", 2000), hstest.Esc("@alice:localhost"), "!nope", hstest.Esc("$nope"), "..", "m.room.message"}
	bodies := [][]byte{nil, []byte(`{}`), []byte(`[]`), []byte(`null`), []byte(`"x"`), []byte(`{"a":`), []byte("\xff\xfe"),
		[]byte(`{"user_id":7,"room_id":[],"typing":"yes","timeout":-1,"limit":-5,"auth":{"type":7}}`),
		[]byte(`{"messages":{"@a:b":{"D":"notobject"}},"device_keys":{"user_id":"@x:y"},"one_time_keys":{"a":1}}`)}
	seen := 0
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.Contains(route, "/logout") || strings.Contains(route, "delete_devices") || method == "DELETE" && strings.Contains(route, "/devices/") {
			return nil // would end the test's own session
		}
		for pi, p := range params {
			path := fillParams(route, p)
			for bi, body := range bodies {
				if method == "GET" && bi > 0 {
					break
				}
				if pi > 2 && bi > 3 {
					break // keep the run short: every route still gets every body once
				}
				st, res := alice.Do(method, path, body)
				seen++
				if st >= 500 {
					t.Errorf("%s %s body %q = %d %s, want a 4xx or success", method, route, body, st, res.Raw)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d hostile requests sent", seen)
	// The server still works (alice may have left the target room above).
	alice.Send(alice.CreateRoom(map[string]any{}), "after", "still alive")
}

// fillParams replaces every {param} and trailing * of a chi route with p.
func fillParams(route, p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(route, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(route[i:], '}')
		b.WriteString(route[:i])
		b.WriteString(p)
		route = route[i+j+1:]
	}
	b.WriteString(strings.TrimSuffix(route, "*"))
	return b.String()
}
